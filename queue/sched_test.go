package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// scheduleJob enqueues a job of handler h on key to join its line at runAt (µs of the
// backend's time), waiting up to a minute once there.
func scheduleJob(t *testing.T, be queue.Backend, p queue.Params, key, h string, runAt int64) *queue.Ticket {
	t.Helper()
	tk, _ := ticket(t, be, key, nodeA, config.PriorityNormal)
	tk.Handler = h
	raw, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	j := &queue.Job{Key: key, Handler: h, Priority: tk.Priority, Wait: tk.Deadline - tk.Enqueued, Owner: nodeA[:],
		ResultTTL: 60_000, Enqueued: tk.Enqueued}
	j.Schedule()
	rec, err := j.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := be.Enqueue(context.Background(), p, tk, raw, rec, runAt)
	if err != nil || rep.Outcome != queue.Scheduled || rep.Earliest != runAt {
		t.Fatalf("Enqueue at %d: %+v, %v; want scheduled", runAt, rep, err)
	}
	return tk
}

// TestScheduleAndCancelSteps: both backends take the same steps. A scheduled job is in no
// line, listed and counted; the grant step's next visit is its time, and at that time it joins
// the line, the earlier scheduled first. CancelJob of a scheduled job ends it; of a running
// one, marks it: its renewal says so, and its end records cancelled.
func TestScheduleAndCancelSteps(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 100, Window: time.Second})
		now, err := be.Time(ctx)
		if err != nil {
			t.Fatal(err)
		}
		late := scheduleJob(t, be, p, "s", "h", now+300_000)
		early := scheduleJob(t, be, p, "s", "h", now+200_000)
		gone := scheduleJob(t, be, p, "s", "h", now+100_000)
		if c, _, err := be.CancelJob(ctx, "s", p, gone.ID); err != nil || c != queue.CancelEnded {
			t.Fatalf("CancelJob of a scheduled job: %v, %v", c, err)
		}
		if r, _ := be.Result(ctx, "s", gone.ID); r.State != queue.JobEnded || r.Status != queue.ResultCancelled {
			t.Fatalf("result of a cancelled job: %+v", r)
		}
		sj, err := be.Scheduled(ctx, "s", 10)
		if err != nil || len(sj) != 2 || string(sj[0].ID) != string(early.ID) || sj[0].Job == nil || sj[0].Job.Handler != "h" {
			t.Fatalf("Scheduled: %+v, %v; want early then late", sj, err)
		}
		st, err := be.State(ctx, "s", p)
		if err != nil || st.Scheduled != 2 || st.Jobs != 2 || st.Queued != [4]int{} {
			t.Fatalf("State: %+v, %v", st, err)
		}
		rep := grantJobs(t, be, p, "s", nodeA, []string{"h"}, 5, time.Minute)
		if len(rep.Jobs) != 0 || rep.Next != now+200_000 {
			t.Fatalf("grant before their time: %+v; want none, next at %d", rep, now+200_000)
		}
		waitFor(t, 5*time.Second, "both joined and granted", func() bool {
			rep = grantJobs(t, be, p, "s", nodeA, []string{"h"}, 5, time.Minute)
			return len(rep.Jobs) > 0
		})
		if len(rep.Jobs) == 1 { // the step ran between their times
			if string(rep.Jobs[0].ID) != string(early.ID) {
				t.Fatalf("granted %x first, want the earlier", rep.Jobs[0].ID)
			}
			waitFor(t, 5*time.Second, "the later one granted", func() bool {
				r := grantJobs(t, be, p, "s", nodeA, []string{"h"}, 5, time.Minute)
				rep.Jobs = append(rep.Jobs, r.Jobs...)
				return len(rep.Jobs) == 2
			})
		}
		if string(rep.Jobs[0].ID) != string(early.ID) || string(rep.Jobs[1].ID) != string(late.ID) {
			t.Fatalf("granted in order %x, %x; want early, late", rep.Jobs[0].ID, rep.Jobs[1].ID)
		}
		run := rep.Jobs[1].Job.Runs
		if c, _, err := be.CancelJob(ctx, "s", p, late.ID); err != nil || c != queue.CancelRunning {
			t.Fatalf("CancelJob of a running job: %v, %v", c, err)
		}
		if r, err := be.RenewLease(ctx, "s", p, late.ID, run, time.Minute); err != nil || r != queue.RenewCancelled {
			t.Fatalf("renewal of a cancelled run: %v, %v", r, err)
		}
		f, _, err := be.FinishJob(ctx, "s", p, queue.RunEnd{ID: late.ID, Run: run, Outcome: queue.RunFailed, Data: []byte("stopped")})
		if err != nil || f != queue.FinishCancelled {
			t.Fatalf("end of a cancelled run: %v, %v", f, err)
		}
		if r, _ := be.Result(ctx, "s", late.ID); r.Status != queue.ResultCancelled {
			t.Fatalf("result: %+v, want cancelled", r)
		}
		if c, _, err := be.CancelJob(ctx, "s", p, late.ID); err != nil || c != queue.CancelNoJob {
			t.Fatalf("CancelJob of an ended job: %v, %v", c, err)
		}
	})
}

// waitFor fails the test unless cond holds within d, checking every 10ms.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
