package rateltd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestScheduledJobStartsAtItsTime: a job enqueued WithDelay(300ms) does not start before its
// time, and starts soon after it (times measured by the handler, on the same host).
func TestScheduledJobStartsAtItsTime(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		started := make(chan time.Time, 1)
		if err := c.Handle("at", func(context.Context, []byte) ([]byte, error) {
			started <- time.Now()
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		id := enqueue(t, c, "k", "at", "", WithDelay(300*time.Millisecond))
		if _, err := wait(t, c, id); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		// The node turns the run time into Redis's clock by its estimate of the offset, good
		// to a few ms (half a round trip): 297.5ms was seen under load.
		at := (<-started).Sub(before)
		if at < 280*time.Millisecond || at > 3*time.Second {
			t.Fatalf("a job delayed 300ms started after %v", at)
		}
	})
}

// TestEnqueueManyScheduled: a batch enqueued WithDelay(300ms) is counted scheduled at once,
// does not start before its time, and runs in the order of its payloads (one worker).
func TestEnqueueManyScheduled(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.Workers = 1
		c := h.client(cfg)
		var mu sync.Mutex
		var order []string
		var first time.Time
		if err := c.Handle("many-at", func(_ context.Context, p []byte) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			if first.IsZero() {
				first = time.Now()
			}
			order = append(order, string(p))
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		before := time.Now()
		ids, err := c.EnqueueMany(ctx, "k", "many-at", [][]byte{[]byte("1"), []byte("2"), []byte("3")}, WithDelay(300*time.Millisecond))
		if err != nil || len(ids) != 3 {
			t.Fatalf("EnqueueMany: %d ids, %v", len(ids), err)
		}
		if st := status(t, c, "k"); st.JobsScheduled+len(order) != 3 {
			t.Fatalf("%d scheduled, want 3", st.JobsScheduled)
		}
		for _, id := range ids {
			if _, err := wait(t, c, id); err != nil {
				t.Fatalf("Wait: %v", err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if at := first.Sub(before); at < 280*time.Millisecond || at > 3*time.Second { // as TestScheduledJobStartsAtItsTime
			t.Fatalf("a batch delayed 300ms started after %v", at)
		}
		if got := fmt.Sprint(order); got != "[1 2 3]" {
			t.Fatalf("ran %s, want [1 2 3]", got)
		}
	})
}

// TestScheduledJobsRunInTheirTimesOrder: jobs scheduled at t1 < t2 run in that order, though
// enqueued the other way round, on a node running one job at a time.
func TestScheduledJobsRunInTheirTimesOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.Workers = 1
		c := h.client(cfg)
		var mu sync.Mutex
		var order []string
		if err := c.Handle("log", func(_ context.Context, p []byte) ([]byte, error) {
			mu.Lock()
			order = append(order, string(p))
			mu.Unlock()
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		late := enqueue(t, c, "k", "log", "t2", WithRunAt(now.Add(500*time.Millisecond)))
		early := enqueue(t, c, "k", "log", "t1", WithRunAt(now.Add(250*time.Millisecond)))
		for _, id := range []string{early, late} {
			if _, err := wait(t, c, id); err != nil {
				t.Fatalf("Wait: %v", err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(order) != 2 || order[0] != "t1" || order[1] != "t2" {
			t.Fatalf("ran in order %v, want [t1 t2]", order)
		}
	})
}

// TestScheduledJobSurvivesItsEnqueuer: a scheduled job is kept while its enqueuer is gone,
// and another Client runs it when its time comes; Status counts it until then.
func TestScheduledJobSurvivesItsEnqueuer(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		enq := h.client(jobConfig())
		id := enqueue(t, enq, "k", "echo", "later", WithDelay(400*time.Millisecond))
		st, err := enq.Status(context.Background(), "k")
		if err != nil || st.JobsScheduled != 1 || st.Jobs != 1 || st.Queued != 0 {
			t.Fatalf("Status after a scheduled enqueue: %+v, %v; want 1 job scheduled, none queued", st, err)
		}
		enq.Close()
		worker := h.client(jobConfig())
		if err := worker.Handle("echo", func(_ context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
			t.Fatal(err)
		}
		if got, err := wait(t, worker, id); err != nil || string(got) != "later" {
			t.Fatalf("Wait = %q, %v", got, err)
		}
		st, err = worker.Status(context.Background(), "k")
		if err != nil || st.JobsScheduled != 0 {
			t.Fatalf("Status after the run: %+v, %v; want none scheduled", st, err)
		}
	})
}

// TestCancelWaitingAndScheduledJobs: CancelJob of a job waiting in line (no node runs its
// handler yet) and of a scheduled one ends them: Wait returns ErrCancelled, and the handler,
// registered afterwards, never runs them.
func TestCancelWaitingAndScheduledJobs(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		ctx := context.Background()
		waiting := enqueue(t, c, "k", "h", "w")
		scheduled := enqueue(t, c, "k", "h", "s", WithDelay(200*time.Millisecond))
		for _, id := range []string{waiting, scheduled} {
			if err := c.CancelJob(ctx, id); err != nil {
				t.Fatalf("CancelJob: %v", err)
			}
			if _, err := wait(t, c, id); !errors.Is(err, ErrCancelled) {
				t.Fatalf("Wait of a cancelled job: %v, want ErrCancelled", err)
			}
		}
		if err := c.CancelJob(ctx, waiting); !errors.Is(err, ErrJobNotFound) {
			t.Fatalf("CancelJob of an ended job: %v, want ErrJobNotFound", err)
		}
		ran := make(chan string, 2)
		if err := c.Handle("h", func(_ context.Context, p []byte) ([]byte, error) {
			ran <- string(p)
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		probe := enqueue(t, c, "k", "h", "probe", WithDelay(300*time.Millisecond))
		if _, err := wait(t, c, probe); err != nil {
			t.Fatalf("Wait of a later job: %v", err)
		}
		if got := <-ran; got != "probe" {
			t.Fatalf("a cancelled job ran: %q", got)
		}
		st, err := c.Status(ctx, "k")
		if err != nil || st.Jobs != 0 || st.JobsScheduled != 0 || st.Queued != 0 {
			t.Fatalf("Status: %+v, %v; want no job left", st, err)
		}
	})
}

// TestCancelRunningJob: CancelJob of a running job cancels its handler's ctx with the cause
// ErrCancelled, and the job ends cancelled, not retried; the run is observed as cancelled.
func TestCancelRunningJob(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		obs := &jobEvents{}
		cfg := jobConfig()
		cfg.Observer = obs
		c := h.client(cfg)
		running := make(chan struct{})
		cause := make(chan error, 1)
		if err := c.Handle("long", func(ctx context.Context, _ []byte) ([]byte, error) {
			close(running)
			select {
			case <-ctx.Done():
				cause <- context.Cause(ctx)
				return nil, ctx.Err()
			case <-time.After(20 * time.Second):
				cause <- nil
				return nil, nil
			}
		}); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, c, "k", "long", "", WithMaxRetries(3))
		<-running
		if err := c.CancelJob(context.Background(), id); err != nil {
			t.Fatalf("CancelJob: %v", err)
		}
		if err := <-cause; !errors.Is(err, ErrCancelled) {
			t.Fatalf("handler's ctx cause: %v, want ErrCancelled", err)
		}
		if _, err := wait(t, c, id); !errors.Is(err, ErrCancelled) {
			t.Fatalf("Wait: %v, want ErrCancelled", err)
		}
		// A run is observed after its end is recorded, so after Wait may have returned.
		eventually(t, 5*time.Second, "the run observed", func() bool {
			obs.mu.Lock()
			defer obs.mu.Unlock()
			return len(obs.events) > 0
		})
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if len(obs.events) != 1 || obs.events[0].Outcome != JobOutcomeCancelled {
			t.Fatalf("job events %+v, want one cancelled", obs.events)
		}
	})
}

// TestCancelRunningJobAtOnce: with a long lease (renewed every 10s), the handler of a
// cancelled job is stopped at once, on another Client than the one that cancels: the
// cancel asks the node running it to renew the lease now.
func TestCancelRunningJobAtOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.LeaseTimeout = 30 * time.Second
		worker, other := h.client(cfg), h.client(cfg)
		running := make(chan struct{})
		stopped := make(chan time.Time, 1)
		if err := worker.Handle("long", func(ctx context.Context, _ []byte) ([]byte, error) {
			close(running)
			<-ctx.Done()
			stopped <- time.Now()
			return nil, context.Cause(ctx)
		}); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, other, "k", "long", "")
		<-running
		asked := time.Now()
		if err := other.CancelJob(context.Background(), id); err != nil {
			t.Fatalf("CancelJob: %v", err)
		}
		select {
		case at := <-stopped:
			if d := at.Sub(asked); d > 3*time.Second {
				t.Fatalf("handler stopped %v after CancelJob", d)
			}
		case <-time.After(8 * time.Second):
			t.Fatal("handler not stopped within 8s of CancelJob (its lease renews every 10s)")
		}
		if _, err := wait(t, other, id); !errors.Is(err, ErrCancelled) {
			t.Fatalf("Wait: %v, want ErrCancelled", err)
		}
	})
}

// TestScheduledJobsListedAndResetEvicts: ScheduledJobs lists a key's scheduled jobs earliest
// first; Reset ends them with ErrEvicted, as it ends the jobs in line.
func TestScheduledJobsListedAndResetEvicts(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		ctx := context.Background()
		late := enqueue(t, c, "k", "h", "late", WithDelay(time.Hour), WithPriority(PriorityHigh))
		soon := enqueue(t, c, "k", "h", "soon", WithDelay(time.Minute))
		got, err := c.ScheduledJobs(ctx, "k", 10)
		if err != nil || len(got) != 2 {
			t.Fatalf("ScheduledJobs = %+v, %v; want 2", got, err)
		}
		if got[0].ID != soon || string(got[0].Payload) != "soon" || got[0].Handler != "h" || got[1].ID != late ||
			got[1].Priority != PriorityHigh {
			t.Fatalf("ScheduledJobs = %+v; want soon, then late (high)", got)
		}
		if d := time.Until(got[0].RunAt); d < 50*time.Second || d > 70*time.Second {
			t.Fatalf("soon runs in %v, want about 1m", d)
		}
		if err := c.Reset(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{soon, late} {
			if _, err := wait(t, c, id); !errors.Is(err, ErrEvicted) {
				t.Fatalf("Wait after Reset: %v, want ErrEvicted", err)
			}
		}
		if st, err := c.Status(ctx, "k"); err != nil || st.JobsScheduled != 0 || st.Jobs != 0 {
			t.Fatalf("Status after Reset: %+v, %v", st, err)
		}
	})
}
