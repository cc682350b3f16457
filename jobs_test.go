package rateltd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jobConfig is a Config with short intervals, so that job tests take little time.
func jobConfig() Config {
	return Config{PollInterval: 100 * time.Millisecond, LeaseTimeout: time.Second, RetryBackoff: 50 * time.Millisecond,
		Default: Limit{Max: 1000, Window: time.Second}}
}

func wait(t *testing.T, c *Client, id string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Wait(ctx, id)
}

func enqueue(t *testing.T, c *Client, key, handler string, payload string, opts ...Option) string {
	t.Helper()
	id, err := c.Enqueue(context.Background(), key, handler, []byte(payload), opts...)
	if err != nil {
		t.Fatalf("Enqueue(%q, %q): %v", key, handler, err)
	}
	return id
}

func TestJobRunsWhereHandledAndWaitWorksAnywhere(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		enq, worker, other := h.client(jobConfig()), h.client(jobConfig()), h.client(jobConfig())
		var ranOn atomic.Value
		if err := worker.Handle("upper", func(_ context.Context, p []byte) ([]byte, error) {
			ranOn.Store("worker")
			return []byte(strings.ToUpper(string(p))), nil
		}); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, enq, "mail", "upper", "hello")
		if !strings.HasPrefix(id, "mail/") {
			t.Fatalf("id %q does not name its key", id)
		}
		for _, c := range []*Client{enq, other, worker} {
			got, err := wait(t, c, id)
			if err != nil || string(got) != "HELLO" {
				t.Fatalf("Wait = %q, %v; want HELLO", got, err)
			}
		}
		if ranOn.Load() != "worker" {
			t.Fatal("the job did not run on the node with its handler")
		}
		st := status(t, other, "mail")
		if st.Jobs != 0 || st.JobsRunning != 0 || st.Counters.Succeeded != 1 || st.Counters.Granted != 1 || st.Used != 1 {
			t.Fatalf("status after the job: %+v", st)
		}
	})
}

func TestJobWaitsInTheSameLine(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.Limits = map[string]Limit{"api": {Max: 1, Window: 400 * time.Millisecond}}
		c := h.client(cfg)
		var mu sync.Mutex
		var order []string
		note := func(s string) {
			mu.Lock()
			order = append(order, s)
			mu.Unlock()
		}
		if err := c.Handle("job", func(_ context.Context, p []byte) ([]byte, error) { note(string(p)); return nil, nil }); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := c.Request(ctx, "api", func(context.Context) (any, error) { note("first"); return nil, nil }); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, c, "api", "job", "job")
		done := make(chan error, 2)
		go func() {
			waitQueued(t, c, "api", 2)
			_, err := c.Request(ctx, "api", func(context.Context) (any, error) { note("high"); return nil, nil }, WithPriority(PriorityHigh))
			done <- err
		}()
		waitQueued(t, c, "api", 1)
		go func() {
			_, err := c.Request(ctx, "api", func(context.Context) (any, error) { note("after"); return nil, nil })
			done <- err
		}()
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if _, err := wait(t, c, id); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := strings.Join(order, ","); got != "first,high,job,after" {
			t.Fatalf("order %s, want first,high,job,after (priority, then first come first served)", got)
		}
	})
}

func TestJobRetriesWithBackoffThenDeadLetters(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.RetryBackoff = 100 * time.Millisecond
		c := h.client(cfg)
		var mu sync.Mutex
		var runs []time.Time
		if err := c.Handle("flaky", func(context.Context, []byte) ([]byte, error) {
			mu.Lock()
			runs = append(runs, time.Now())
			mu.Unlock()
			return nil, errors.New("upstream broke")
		}); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, c, "k", "flaky", "x", WithMaxRetries(2))
		_, err := wait(t, c, id)
		var je *JobError
		if !errors.Is(err, ErrJobFailed) || !errors.As(err, &je) || je.Message != "upstream broke" || je.ID != id {
			t.Fatalf("Wait error %v, want a JobError with the handler's message", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(runs) != 3 {
			t.Fatalf("%d runs, want 3 (one and two retries)", len(runs))
		}
		// Backoff 100ms then 200ms, each less up to half.
		if g1, g2 := runs[1].Sub(runs[0]), runs[2].Sub(runs[1]); g1 < 50*time.Millisecond || g2 < 100*time.Millisecond {
			t.Fatalf("gaps %v, %v: want at least 50ms and 100ms", g1, g2)
		}
		st := status(t, c, "k")
		if st.DeadLetters != 1 || st.Counters.Dead != 1 || st.Counters.Retried != 2 || st.Counters.Failed != 3 || st.Jobs != 0 {
			t.Fatalf("status %+v: want one dead letter, 2 retries, 3 failures", st)
		}
		dls, err := c.DeadLetters(context.Background(), "k", 10)
		if err != nil || len(dls) != 1 {
			t.Fatalf("DeadLetters: %+v, %v", dls, err)
		}
		if d := dls[0]; d.JobID != id || d.Handler != "flaky" || string(d.Payload) != "x" || d.Failures != 3 || d.Error != "upstream broke" ||
			time.Since(d.At) > time.Minute || d.Raw != nil {
			t.Fatalf("dead letter %+v", d)
		}
	})
}

func TestJobSucceedsOnARetry(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		var n atomic.Int32
		if err := c.Handle("third-time", func(context.Context, []byte) ([]byte, error) {
			if n.Add(1) < 3 {
				return nil, errors.New("not yet")
			}
			return []byte("ok"), nil
		}); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, c, "k", "third-time", "", WithMaxRetries(5))
		if got, err := wait(t, c, id); err != nil || string(got) != "ok" {
			t.Fatalf("Wait = %q, %v", got, err)
		}
		if n.Load() != 3 {
			t.Fatalf("%d runs, want 3", n.Load())
		}
	})
}

func TestJobWithoutLiveHandlerDoesNotBlockTheLine(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		id := enqueue(t, c, "k", "nobody-runs-this", "x")
		start := time.Now()
		v, err := c.Request(context.Background(), "k", func(context.Context) (any, error) { return "ran", nil }, WithTimeout(5*time.Second))
		if err != nil || v != "ran" {
			t.Fatalf("Request behind an unhandled job: %v, %v", v, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("the request waited %v behind a job nobody runs", d)
		}
		st := status(t, c, "k")
		if st.Jobs != 1 || st.Queued != 1 {
			t.Fatalf("status %+v: the job should still wait in line", st)
		}
		// A node that runs the handler arrives: the job runs.
		late := h.client(jobConfig())
		if err := late.Handle("nobody-runs-this", func(_ context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
			t.Fatal(err)
		}
		if got, err := wait(t, c, id); err != nil || string(got) != "x" {
			t.Fatalf("Wait = %q, %v", got, err)
		}
	})
}

func TestJobPayloadLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.MaxPayload = 16
		c := h.client(cfg)
		_, err := c.Enqueue(context.Background(), "k", "h", make([]byte, 17))
		if !errors.Is(err, ErrPayloadTooLarge) || !strings.Contains(err.Error(), "17 bytes, at most 16") {
			t.Fatalf("Enqueue of 17 bytes: %v", err)
		}
		if err := c.Handle("big", func(context.Context, []byte) ([]byte, error) { return make([]byte, 17), nil }); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, c, "k", "big", strings.Repeat("x", 16))
		_, err = wait(t, c, id)
		if !errors.Is(err, ErrJobFailed) || !strings.Contains(err.Error(), "payload too large") {
			t.Fatalf("Wait for a result over the limit: %v", err)
		}
	})
}

func TestJobSurvivesItsEnqueuer(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		enq := h.client(jobConfig())
		id := enqueue(t, enq, "k", "echo", "kept")
		enq.Close()
		worker := h.client(jobConfig())
		if err := worker.Handle("echo", func(_ context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
			t.Fatal(err)
		}
		fresh := h.client(jobConfig())
		if got, err := wait(t, fresh, id); err != nil || string(got) != "kept" {
			t.Fatalf("Wait from a new node = %q, %v", got, err)
		}
	})
}

// TestJobGivenBackOnShutdown: a handler that returns when Shutdown cancels its ctx gives its
// job back to the line without spending a retry, and Shutdown returns nil.
func TestJobGivenBackOnShutdown(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		first := h.client(jobConfig())
		started := make(chan struct{})
		if err := first.Handle("slow", func(ctx context.Context, _ []byte) ([]byte, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, first, "k", "slow", "")
		<-started
		now, cancel := context.WithCancel(context.Background())
		cancel() // stop at once: the handler is cancelled and has the grace to return
		if err := first.Shutdown(now); err != nil {
			t.Fatalf("Shutdown: %v; want nil: the handler returned when cancelled", err)
		}
		second := h.client(jobConfig())
		if err := second.Handle("slow", func(context.Context, []byte) ([]byte, error) { return []byte("second"), nil }); err != nil {
			t.Fatal(err)
		}
		if got, err := wait(t, second, id); err != nil || string(got) != "second" {
			t.Fatalf("Wait = %q, %v: the job should have gone back to its line without using a retry", got, err)
		}
		// No run failed and none was retried. A grant step of the first node already on its way
		// when it began to stop may grant the job to it once more, which it gives back unrun
		// (a stopping node runs no job): at least 2 grants, then.
		if st := status(t, second, "k"); st.Counters.Failed != 0 || st.Counters.Retried != 0 || st.Counters.Granted < 2 {
			t.Fatalf("status %+v: want no failure, no retry and at least 2 grants", st)
		}
	})
}

func TestJobExpiresInLine(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		start := time.Now()
		id := enqueue(t, c, "k", "nobody", "", WithTimeout(300*time.Millisecond))
		_, err := wait(t, c, id)
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait: %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Fatalf("expired after %v, before its time", d)
		}
	})
}

func TestJobEvictedByReset(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		id := enqueue(t, c, "k", "nobody", "")
		if err := c.Reset(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := wait(t, c, id); !errors.Is(err, ErrEvicted) {
			t.Fatalf("Wait: %v, want ErrEvicted", err)
		}
	})
}

func TestJobRetryAfterPausesTheKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		var runs atomic.Int32
		if err := c.Handle("limited", func(context.Context, []byte) ([]byte, error) {
			if runs.Add(1) == 1 {
				return nil, RetryAfter(500*time.Millisecond, errors.New("429"))
			}
			return []byte("done"), nil
		}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		id := enqueue(t, c, "k", "limited", "", WithMaxRetries(1))
		eventually(t, 5*time.Second, "the key paused", func() bool { return status(t, c, "k").Paused })
		if got, err := wait(t, c, id); err != nil || string(got) != "done" {
			t.Fatalf("Wait = %q, %v", got, err)
		}
		if d := time.Since(start); d < 450*time.Millisecond {
			t.Fatalf("ran again after %v, before the upstream's 500ms", d)
		}
	})
}

func TestJobIDs(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		for _, id := range []string{"", "nope", "k/not-a-uuid", "k/00000000-0000-0000-0000-000000000000", "{x}/00000000-0000-0000-0000-000000000000"} {
			if _, err := wait(t, c, id); !errors.Is(err, ErrJobNotFound) {
				t.Errorf("Wait(%q): %v, want ErrJobNotFound", id, err)
			}
		}
		if err := c.Handle("", func(context.Context, []byte) ([]byte, error) { return nil, nil }); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Handle with no name: %v", err)
		}
		if err := c.Handle("x", nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Handle with no func: %v", err)
		}
		if _, err := c.Enqueue(context.Background(), "{bad}", "x", nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Enqueue with a bad key: %v", err)
		}
	})
}

type invoice struct {
	Customer string
	Cents    int
}

func TestCallTyped(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		if err := HandleFunc(c, "bill", func(_ context.Context, in invoice) (string, error) {
			return fmt.Sprintf("%s owes %d", in.Customer, in.Cents), nil
		}); err != nil {
			t.Fatal(err)
		}
		got, err := Call[invoice, string](context.Background(), c, "billing", "bill", invoice{"ada", 1234})
		if err != nil || got != "ada owes 1234" {
			t.Fatalf("Call = %q, %v", got, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err = Call[invoice, string](ctx, c, "billing", "nobody", invoice{})
		id, ok := JobIDOf(err)
		if !errors.Is(err, context.DeadlineExceeded) || !ok || !strings.HasPrefix(id, "billing/") {
			t.Fatalf("Call past ctx: %v (id %q)", err, id)
		}
	})
}

// TestJobStateHasTTLs: G9 for durable jobs: with jobs done, failed, retrying, running and
// waiting for a handler, every Redis key rateltd wrote has a TTL.
func TestJobStateHasTTLs(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		if h.rdb == nil {
			t.Skip("Redis TTLs")
		}
		cfg := jobConfig()
		cfg.RetryBackoff = time.Minute
		cfg.ShutdownTimeout = 100 * time.Millisecond // the "block" handler returns when cancelled
		c := h.client(cfg)
		started := make(chan struct{}, 1)
		c.Handle("ok", func(_ context.Context, p []byte) ([]byte, error) { return p, nil })
		c.Handle("fail", func(context.Context, []byte) ([]byte, error) { return nil, errors.New("no") })
		c.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		})
		ctx := context.Background()
		if _, err := wait(t, c, enqueue(t, c, "a", "ok", "x")); err != nil {
			t.Fatal(err)
		}
		if _, err := wait(t, c, enqueue(t, c, "b", "fail", "x")); !errors.Is(err, ErrJobFailed) {
			t.Fatal(err)
		}
		retrying := enqueue(t, c, "c", "fail", "x", WithMaxRetries(3))
		enqueue(t, c, "d", "block", "x")
		<-started
		waiting := enqueue(t, c, "e", "nobody", "x")
		scheduled := enqueue(t, c, "f", "ok", "x", WithDelay(time.Hour))
		for _, id := range []string{retrying, waiting, scheduled} {
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			c.Wait(wctx, id) // marks them waited for
			cancel()
		}
		eventually(t, 5*time.Second, "a retry pending", func() bool { return status(t, c, "c").Counters.Retried == 1 })
		for _, k := range h.keys(ctx) {
			if ttl := h.rdb.PTTL(ctx, k).Val(); ttl == -1 {
				t.Errorf("key %s has no TTL", k)
			}
		}
	})
}

// TestJobWorkersBound: a node runs at most Config.Workers jobs at once, and takes a job from
// the line (using a slot of the limit) only when a worker is free.
func TestJobWorkersBound(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.Workers = 2
		c := h.client(cfg)
		release := make(chan struct{})
		var running, most atomic.Int32
		if err := c.Handle("hold", func(context.Context, []byte) ([]byte, error) {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			running.Add(-1)
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for range 6 {
			ids = append(ids, enqueue(t, c, "k", "hold", ""))
		}
		eventually(t, 5*time.Second, "two jobs running", func() bool { return running.Load() == 2 })
		time.Sleep(300 * time.Millisecond) // three polls: no third job starts
		st := status(t, c, "k")
		if running.Load() != 2 || st.JobsRunning != 2 || st.Queued != 4 || st.Used != 2 {
			t.Fatalf("with 2 workers: %d running, status %+v; want 2 running, 4 waiting, 2 slots used", running.Load(), st)
		}
		close(release)
		for _, id := range ids {
			if _, err := wait(t, c, id); err != nil {
				t.Fatal(err)
			}
		}
		if most.Load() != 2 {
			t.Fatalf("at most %d ran at once, want 2", most.Load())
		}
	})
}

// TestJobNameMakesEnqueueIdempotent: a job enqueued again under the same key and name, while
// it waits, runs or has its result kept, is not queued again: the same id, one run.
func TestJobNameMakesEnqueueIdempotent(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		var runs atomic.Int32
		id := enqueue(t, c, "k", "count", "first", WithJobName("order-42"))
		if again := enqueue(t, c, "k", "count", "second", WithJobName("order-42")); again != id {
			t.Fatalf("waiting: ids %s and %s", id, again)
		}
		if st := status(t, c, "k"); st.Jobs != 1 || st.Queued != 1 {
			t.Fatalf("status %+v: want one job", st)
		}
		if err := c.Handle("count", func(_ context.Context, p []byte) ([]byte, error) { runs.Add(1); return p, nil }); err != nil {
			t.Fatal(err)
		}
		if got, err := wait(t, c, id); err != nil || string(got) != "first" {
			t.Fatalf("Wait = %q, %v", got, err)
		}
		if again := enqueue(t, c, "k", "count", "third", WithJobName("order-42")); again != id {
			t.Fatalf("done: ids %s and %s", id, again)
		}
		other := enqueue(t, c, "other", "count", "x", WithJobName("order-42"))
		if other == id {
			t.Fatal("the same name on another key gave the same id")
		}
		if _, err := wait(t, c, other); err != nil {
			t.Fatal(err)
		}
		if got, err := wait(t, c, id); err != nil || string(got) != "first" || runs.Load() != 2 {
			t.Fatalf("after enqueuing again: %q, %v, %d runs; want the first result and one run per key", got, err, runs.Load())
		}
	})
}

// TestJobWaitGivesUpApartFromExpiry: a Wait whose ctx ends is told so by ctx's error, not by
// ErrTimeout (which says the job expired in line); the job goes on, and a later Wait has it.
func TestJobWaitGivesUpApartFromExpiry(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		id := enqueue(t, c, "k", "later", "x")
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.Wait(ctx, id)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
			t.Fatalf("Wait past its ctx: %v; want ctx's error and not ErrTimeout", err)
		}
		if err := c.Handle("later", func(_ context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
			t.Fatal(err)
		}
		if got, err := wait(t, c, id); err != nil || string(got) != "x" {
			t.Fatalf("a later Wait = %q, %v", got, err)
		}
	})
}

// jobEvents is a JobObserver that keeps the job events it is told.
type jobEvents struct {
	mu     sync.Mutex
	events []JobEvent
}

func (o *jobEvents) ObserveRequest(RequestEvent) {}
func (o *jobEvents) ObserveJob(e JobEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, e)
}

// TestHandlerPanicIsAPanicError: a handler that panics fails its run with a *PanicError, as a
// fn that panics does: the JobObserver sees it in JobEvent.Err with the value and the stack,
// and the job's failure text (Wait's JobError, the dead letter) names the panic and keeps the
// stack. A run that succeeds reports no error.
func TestHandlerPanicIsAPanicError(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		obs := &jobEvents{}
		cfg := jobConfig()
		cfg.Observer = obs
		c := h.client(cfg)
		if err := c.Handle("boom", func(context.Context, []byte) ([]byte, error) { panic("boom") }); err != nil {
			t.Fatal(err)
		}
		if err := c.Handle("ok", func(context.Context, []byte) ([]byte, error) { return []byte("fine"), nil }); err != nil {
			t.Fatal(err)
		}
		_, err := wait(t, c, enqueue(t, c, "k", "boom", "x"))
		var je *JobError
		if !errors.As(err, &je) || !strings.HasPrefix(je.Message, "rateltd: panic: boom\n") || !strings.Contains(je.Message, "goroutine") {
			t.Fatalf("Wait: %v; want a JobError naming the panic, with its stack", err)
		}
		if _, err := wait(t, c, enqueue(t, c, "k", "ok", "x")); err != nil {
			t.Fatal(err)
		}
		// A run is observed after its end is recorded, so after Wait may have returned.
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			obs.mu.Lock()
			if len(obs.events) >= 2 || time.Now().After(end) {
				break
			}
			obs.mu.Unlock()
		}
		defer obs.mu.Unlock()
		if len(obs.events) != 2 {
			t.Fatalf("%d job events, want 2: %+v", len(obs.events), obs.events)
		}
		var pe *PanicError
		if e := obs.events[0]; e.Handler != "boom" || e.Outcome != JobOutcomeDead || !errors.As(e.Err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 {
			t.Errorf("panicking run: %+v; want outcome dead and a *PanicError with value and stack", e)
		}
		if e := obs.events[1]; e.Handler != "ok" || e.Outcome != JobOutcomeSucceeded || e.Err != nil || e.Run != 1 {
			t.Errorf("succeeding run: %+v", e)
		}
	})
}
