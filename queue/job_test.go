package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// enqueueJob puts a job of handler h on key, waiting up to a minute, with maxRetries.
func enqueueJob(t *testing.T, be queue.Backend, p queue.Params, key, h string, maxRetries int) *queue.Ticket {
	t.Helper()
	tk, _ := ticket(t, be, key, nodeA, config.PriorityNormal)
	tk.Handler = h
	raw, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	j := &queue.Job{Key: key, Handler: h, Payload: []byte("payload\x00\xff"), Priority: tk.Priority, MaxRetries: maxRetries,
		Wait: tk.Deadline - tk.Enqueued, Owner: nodeA[:], ResultTTL: 60_000, Enqueued: tk.Enqueued}
	rec, err := j.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := be.Enqueue(context.Background(), p, tk, raw, rec, 0)
	if err != nil || rep.Outcome != queue.Queued {
		t.Fatalf("Enqueue: %+v, %v", rep, err)
	}
	return tk
}

// grantJobs runs one grant step for key as node, which runs handlers mine, with slots workers
// free and leases of lease.
func grantJobs(t *testing.T, be queue.Backend, p queue.Params, key string, node uuid.UUID, mine []string, slots int, lease time.Duration) queue.GrantReply {
	t.Helper()
	return grantWith(t, be, key, p, queue.GrantArgs{Node: node[:], Batch: 10, ClaimTimeout: time.Second, Mine: mine,
		Slots: []int{slots}, Lease: lease, Hold: time.Second, MaxLost: 1})
}

// TestJobLeaseFencing: a run whose lease lapsed and was taken by another node can neither renew
// nor finish; the new run's result is the one kept. After more lapses than MaxLost the job is
// dead-lettered.
func TestJobLeaseFencing(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 100, Window: time.Second})
		tk := enqueueJob(t, be, p, "fence", "h", 0)

		if rep := grantJobs(t, be, p, "fence", nodeA, nil, 5, time.Second); len(rep.Jobs) != 0 {
			t.Fatalf("a node without the handler was granted the job: %+v", rep)
		}
		if rep := grantJobs(t, be, p, "fence", nodeA, []string{"h"}, 0, time.Second); len(rep.Jobs) != 0 || !rep.Busy {
			t.Fatalf("a node with no free worker: %+v, want busy and no job", rep)
		}
		a := grantJobs(t, be, p, "fence", nodeA, []string{"h"}, 1, 50*time.Millisecond)
		if len(a.Jobs) != 1 || string(a.Jobs[0].ID) != string(tk.ID) || a.Jobs[0].Job.Runs != 1 ||
			string(a.Jobs[0].Job.Payload) != "payload\x00\xff" || string(a.Jobs[0].Job.Holder) != string(nodeA[:]) {
			t.Fatalf("grant to A: %+v", a)
		}
		time.Sleep(100 * time.Millisecond) // A's lease lapses
		b := grantJobs(t, be, p, "fence", nodeB, []string{"h"}, 1, time.Minute)
		if len(b.Jobs) != 1 || b.Jobs[0].Job.Runs != 2 || b.Jobs[0].Job.Lost != 1 {
			t.Fatalf("after A's lease lapsed, grant to B: %+v", b)
		}
		if r, err := be.RenewLease(ctx, "fence", p, tk.ID, 1, time.Minute); err != nil || r != queue.RenewLost {
			t.Fatalf("A renewed a lapsed lease: %v, %v", r, err)
		}
		if f, _, err := be.FinishJob(ctx, "fence", p, queue.RunEnd{ID: tk.ID, Run: 1, Outcome: queue.RunDone, Data: []byte("A")}); err != nil || f != queue.FinishStale {
			t.Fatalf("A's late finish: %v, %v; want stale", f, err)
		}
		if r, err := be.RenewLease(ctx, "fence", p, tk.ID, 2, time.Minute); err != nil || r != queue.RenewKept {
			t.Fatalf("B's renewal: %v, %v", r, err)
		}
		if f, _, err := be.FinishJob(ctx, "fence", p, queue.RunEnd{ID: tk.ID, Run: 2, Outcome: queue.RunDone, Data: []byte("B")}); err != nil || f != queue.FinishDone {
			t.Fatalf("B's finish: %v, %v", f, err)
		}
		r, err := be.Result(ctx, "fence", tk.ID)
		if err != nil || r.State != queue.JobEnded || r.Status != queue.ResultDone || string(r.Data) != "B" {
			t.Fatalf("result %+v, %v; want B's", r, err)
		}

		// MaxLost 1: the second lapse dead-letters the job.
		tk = enqueueJob(t, be, p, "fence", "h", 0)
		for i := range 2 {
			if rep := grantJobs(t, be, p, "fence", nodeA, []string{"h"}, 1, 10*time.Millisecond); len(rep.Jobs) != 1 {
				t.Fatalf("grant %d: %+v", i, rep)
			}
			time.Sleep(50 * time.Millisecond)
		}
		grantJobs(t, be, p, "fence", nodeA, []string{"h"}, 1, time.Minute)
		r, err = be.Result(ctx, "fence", tk.ID)
		if err != nil || r.Status != queue.ResultFailed {
			t.Fatalf("after two lapses: %+v, %v; want failed", r, err)
		}
		st, err := be.State(ctx, "fence", p)
		if err != nil || st.DeadLetters != 1 || st.Counters[queue.CountReclaimed] != 3 || st.Jobs != 0 {
			t.Fatalf("state %+v, %v", st, err)
		}
	})
}

// TestJobKeepsTraceContext: a job's record keeps the trace context it was enqueued with through
// its grant, a failed run and the retry's grant, on every backend; its cost of 1 stays 1.
func TestJobKeepsTraceContext(t *testing.T) {
	const parent, state = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=x"
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 100, Window: time.Second})
		tk, _ := ticket(t, be, "traced", nodeA, config.PriorityNormal)
		tk.Handler = "h"
		raw, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		j := &queue.Job{Key: "traced", Handler: "h", Payload: []byte("p"), Priority: tk.Priority, MaxRetries: 1,
			Wait: tk.Deadline - tk.Enqueued, Owner: nodeA[:], ResultTTL: 60_000, Enqueued: tk.Enqueued,
			TraceParent: parent, TraceState: state}
		rec, err := j.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := be.Enqueue(ctx, p, tk, raw, rec, 0); err != nil || rep.Outcome != queue.Queued {
			t.Fatalf("Enqueue: %+v, %v", rep, err)
		}
		for run := 1; run <= 2; run++ {
			rep := grantJobs(t, be, p, "traced", nodeA, []string{"h"}, 1, time.Minute)
			if len(rep.Jobs) != 1 {
				t.Fatalf("run %d: grant %+v", run, rep)
			}
			g := rep.Jobs[0].Job
			if g.Runs != run || g.TraceParent != parent || g.TraceState != state || max(1, g.Cost) != 1 {
				t.Fatalf("run %d: granted %+v; want traceparent %q, tracestate %q, cost 1", run, g, parent, state)
			}
			if run == 1 {
				f, _, err := be.FinishJob(ctx, "traced", p, queue.RunEnd{ID: tk.ID, Run: 1, Outcome: queue.RunFailed,
					Data: []byte("boom")})
				if err != nil || f != queue.FinishRetry {
					t.Fatalf("failed run: %v, %v; want a retry", f, err)
				}
			}
		}
	})
}

// TestGrantStepLeasesEveryJob: one grant step that grants more jobs than one ZADD takes puts
// every one of them under its lease, and when the leases lapse the steps take back each job
// (up to 100 a step) and grant it again, as its second run.
func TestGrantStepLeasesEveryJob(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		const n = 1200
		ctx := context.Background()
		p := params(config.Limit{Max: 10_000, Window: time.Second, MaxQueue: n})
		for range n {
			enqueueJob(t, be, p, "many", "h", 0)
		}
		args := queue.GrantArgs{Node: nodeA[:], Batch: 2 * n, ClaimTimeout: time.Second, Mine: []string{"h"},
			Slots: []int{2 * n}, Lease: 50 * time.Millisecond, Hold: time.Second, MaxLost: 3}
		if rep := grantWith(t, be, "many", p, args); len(rep.Jobs) != n {
			t.Fatalf("%d jobs granted, want %d", len(rep.Jobs), n)
		}
		if st, err := be.State(ctx, "many", p); err != nil || st.Leased != n {
			t.Fatalf("%+v, %v: want %d jobs leased", st, err, n)
		}
		time.Sleep(100 * time.Millisecond) // every lease lapses
		args.Lease = time.Minute
		again := 0
		for range n/100 + 1 {
			for _, g := range grantWith(t, be, "many", p, args).Jobs {
				if g.Job.Runs != 2 {
					t.Fatalf("job %x granted again as run %d, want 2", g.ID, g.Job.Runs)
				}
				again++
			}
		}
		st, err := be.State(ctx, "many", p)
		if err != nil || st.Counters[queue.CountReclaimed] != n || again != n {
			t.Fatalf("%+v, %v: %d jobs granted again; want every one of %d taken back and granted again", st, err, again, n)
		}
	})
}
