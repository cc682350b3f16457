package rateltd

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rateltd/rateltd/internal/redistest"
)

// shutdownAsync runs c.Shutdown(ctx) on a goroutine; the channel receives its error.
func shutdownAsync(c *Client, ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Shutdown(ctx) }()
	return ch
}

// shutdownBounded is c.Shutdown(ctx), failing the test when it has not returned 10s after ctx
// ended (it should return half a second after).
func shutdownBounded(t *testing.T, c *Client, ctx context.Context) error {
	t.Helper()
	done := shutdownAsync(c, ctx)
	<-ctx.Done()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return within 10s of its ctx ending")
		return nil
	}
}

// TestShutdownRefusesNewCalls: once Shutdown has begun, every call fails with ErrClosed.
func TestShutdownRefusesNewCalls(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		ctx := context.Background()
		if err := c.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown of an idle Client: %v", err)
		}
		_, reqErr := c.Request(ctx, "k", noop)
		_, doErr := Do(ctx, c, "k", func(context.Context) (int, error) { return 1, nil })
		_, enqErr := c.Enqueue(ctx, "k", "h", nil)
		_, waitErr := c.Wait(ctx, "k/6ba7b810-9dad-11d1-80b4-00c04fd430c8")
		_, checkErr := c.Check(ctx, "k")
		_, statusErr := c.Status(ctx, "k")
		_, keysErr := c.WaitingKeys(ctx)
		_, _, listErr := c.ListKeys(ctx, "", 10)
		_, deadErr := c.DeadLetters(ctx, "k", 10)
		for name, err := range map[string]error{
			"Request": reqErr, "RequestAsync": (<-c.RequestAsync(ctx, "k", noop)).Err, "Do": doErr,
			"Enqueue": enqErr, "Wait": waitErr, "Handle": c.Handle("h", echo), "Check": checkErr,
			"Status": statusErr, "Keys": keysErr, "ListKeys": listErr, "DeadLetters": deadErr,
			"Ping": c.Ping(ctx), "Pause": c.Pause(ctx, "k"), "Resume": c.Resume(ctx, "k"),
			"Reset": c.Reset(ctx, "k"), "SetLimit": c.SetLimit(ctx, "k", Limit{Max: 1, Window: time.Second}),
		} {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Shutdown: %v, want ErrClosed", name, err)
			}
		}
		if err := c.Shutdown(ctx); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close after Shutdown: %v", err)
		}
	})
}

func echo(_ context.Context, p []byte) ([]byte, error) { return p, nil }

// TestShutdownWaitsForRunningWork: while a request fn, a RequestAsync fn and a durable job
// handler run, Shutdown ends the requests waiting in line with ErrClosed at once and takes
// their tickets out, but leaves the running ones their ctx (not cancelled) until they return:
// their values reach their callers, the job's result is kept, and Shutdown returns nil.
func TestShutdownWaitsForRunningWork(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.Limits = map[string]Limit{"one": {Max: 1, Window: 10 * time.Second}}
		c, other := h.client(cfg), h.client(cfg)
		release := make(chan struct{})
		var running sync.WaitGroup
		running.Add(3)
		var cancelled atomic.Int32
		block := func(ctx context.Context) {
			running.Done()
			<-release
			if ctx.Err() != nil {
				cancelled.Add(1)
			}
		}
		if err := c.Handle("slow", func(ctx context.Context, p []byte) ([]byte, error) { block(ctx); return p, nil }); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		id := enqueue(t, other, "jobs", "slow", "kept")
		type res struct {
			v   any
			err error
		}
		sync1 := make(chan res, 1)
		go func() {
			v, err := c.Request(ctx, "one", func(ctx context.Context) (any, error) { block(ctx); return "sync", nil })
			sync1 <- res{v, err}
		}()
		async := c.RequestAsync(ctx, "two", func(ctx context.Context) (any, error) { block(ctx); return "async", nil })
		running.Wait()
		waiting := c.RequestAsync(ctx, "one", noop) // the key's one slot is taken: it waits
		waitQueued(t, other, "one", 1)

		done := shutdownAsync(c, context.Background())
		select {
		case r := <-waiting:
			if !errors.Is(r.Err, ErrClosed) {
				t.Fatalf("waiting request: %v, want ErrClosed", r.Err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiting request did not end while Shutdown waited for running fns")
		}
		waitQueued(t, other, "one", 0)
		if _, err := c.Request(ctx, "two", noop); !errors.Is(err, ErrClosed) {
			t.Fatalf("Request during Shutdown: %v, want ErrClosed", err)
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned (%v) while fns and a handler still ran", err)
		default:
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if r := <-sync1; r.err != nil || r.v != "sync" {
			t.Fatalf("Request = %v, %v; want its fn's value", r.v, r.err)
		}
		if r := <-async; r.Err != nil || r.Value != "async" {
			t.Fatalf("RequestAsync = %v, %v; want its fn's value", r.Value, r.Err)
		}
		if n := cancelled.Load(); n != 0 {
			t.Fatalf("%d of 3 fns had their ctx cancelled though they returned within Shutdown's ctx", n)
		}
		if got, err := wait(t, other, id); err != nil || string(got) != "kept" {
			t.Fatalf("Wait = %q, %v; want the handler's result", got, err)
		}
	})
}

// TestShutdownCancelsWhatOutlivesItsContext: fns and a handler that ignore their ctx have it
// cancelled (cause ErrClosed) when Shutdown's ctx ends; Shutdown then returns an error that
// names them and wraps ctx's error; a second Shutdown and Close return the same error.
func TestShutdownCancelsWhatOutlivesItsContext(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(jobConfig())
		release := make(chan struct{})
		defer close(release)
		var running sync.WaitGroup
		running.Add(3)
		causes := make(chan error, 3)
		stuck := func(ctx context.Context) {
			running.Done()
			select {
			case <-ctx.Done():
				causes <- context.Cause(ctx)
			case <-release: // the end of the test, if ctx is never cancelled
			}
			<-release // and ignore it
		}
		if err := c.Handle("stuck", func(ctx context.Context, _ []byte) ([]byte, error) { stuck(ctx); return nil, nil }); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		enqueue(t, c, "jobs", "stuck", "")
		go c.Request(ctx, "k", func(ctx context.Context) (any, error) { stuck(ctx); return nil, nil })
		async := c.RequestAsync(ctx, "k", func(ctx context.Context) (any, error) { stuck(ctx); return "late", nil })
		running.Wait()

		sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		err := shutdownBounded(t, c, sctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v, want an error wrapping context.DeadlineExceeded", err)
		}
		for _, want := range []string{"1 durable job handler", "2 request fns", "still running"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Shutdown's error %q does not say %q", err, want)
			}
		}
		for range 3 {
			select {
			case cause := <-causes:
				if !errors.Is(cause, ErrClosed) {
					t.Errorf("cause of a cancelled fn's ctx: %v, want ErrClosed", cause)
				}
			default:
				t.Fatal("Shutdown returned before it cancelled the ctx of every fn and handler still running")
			}
		}
		if again := c.Shutdown(ctx); again == nil || again.Error() != err.Error() {
			t.Errorf("second Shutdown: %v, want %v", again, err)
		}
		if again := c.Close(); again == nil || again.Error() != err.Error() {
			t.Errorf("Close after Shutdown: %v, want %v", again, err)
		}
		select {
		case r := <-async:
			t.Fatalf("RequestAsync ended (%v) while its fn ran", r)
		default:
		}
	})
}

// TestCloseReturnsShutdownsError: Close is Shutdown bounded by Config.ShutdownTimeout, and
// returns its error.
func TestCloseReturnsShutdownsError(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.ShutdownTimeout = 100 * time.Millisecond
		c := h.client(cfg)
		release := make(chan struct{})
		defer close(release)
		started := make(chan struct{})
		go c.Request(context.Background(), "k", func(context.Context) (any, error) {
			close(started)
			<-release
			return nil, nil
		})
		<-started
		err := c.Close()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 request fn") {
			t.Fatalf("Close: %v, want the fn still running and context.DeadlineExceeded", err)
		}
	})
}

// jobCounter is an Observer that counts what it is told.
type jobCounter struct{ requests, jobs atomic.Int64 }

func (o *jobCounter) ObserveRequest(RequestEvent) { o.requests.Add(1) }
func (o *jobCounter) ObserveJob(JobEvent)         { o.jobs.Add(1) }

// TestShutdownLateHandlerIsSilent: a handler (and a request fn) that ignore their cancelled
// ctx and return after Shutdown has returned send no Redis command and tell the Observer
// nothing; the job, left with a lease that lapses, is run by another Client afterwards.
func TestShutdownLateHandlerIsSilent(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		hook := &redistest.CommandCounter{}
		if h.rdb != nil {
			h.rdb.AddHook(hook)
		}
		obs := &jobCounter{}
		cfg := jobConfig()
		cfg.Observer = obs
		c := h.client(cfg)
		release := make(chan struct{})
		returned := make(chan struct{}, 2)
		var running sync.WaitGroup
		running.Add(2)
		ignore := func() {
			running.Done()
			<-release
		}
		if err := c.Handle("stuck", func(context.Context, []byte) ([]byte, error) {
			defer func() { returned <- struct{}{} }()
			ignore()
			return []byte("late"), nil
		}); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, c, "jobs", "stuck", "")
		fnDone := make(chan error, 1)
		go func() {
			_, err := c.Request(context.Background(), "k", func(context.Context) (any, error) { ignore(); return nil, nil })
			fnDone <- err
		}()
		running.Wait()
		sctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := shutdownBounded(t, c, sctx); err == nil {
			t.Error("Shutdown: nil, want an error naming the handler and the fn")
		}
		commands, requests, jobs := hook.Count(), obs.requests.Load(), obs.jobs.Load()
		close(release)
		<-returned
		if err := <-fnDone; err != nil {
			t.Fatalf("the late fn's Request: %v", err)
		}
		eventually(t, 5*time.Second, "the late handler's runner ended", func() bool { return c.node.Left().Handlers == 0 })
		if got := hook.Count() - commands; got != 0 {
			t.Errorf("%d Redis commands after Shutdown returned, want 0", got)
		}
		if got := obs.requests.Load() - requests; got != 0 {
			t.Errorf("%d request events after Shutdown returned, want 0", got)
		}
		if got := obs.jobs.Load() - jobs; got != 0 {
			t.Errorf("%d job events after Shutdown returned, want 0", got)
		}
		second := h.client(jobConfig())
		if err := second.Handle("stuck", func(context.Context, []byte) ([]byte, error) { return []byte("again"), nil }); err != nil {
			t.Fatal(err)
		}
		if got, err := wait(t, second, id); err != nil || string(got) != "again" {
			t.Fatalf("Wait = %q, %v; want the job run again by another Client", got, err)
		}
	})
}

// TestShutdownNoFnStartsAfter: with requests arriving all the time, no fn starts after
// Shutdown has returned, and every call ends with fn's value or ErrClosed.
func TestShutdownNoFnStartsAfter(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 1_000_000, Window: time.Second}})
		var returned atomic.Bool
		var late atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, err := c.Request(context.Background(), "k", func(context.Context) (any, error) {
						if returned.Load() {
							late.Add(1)
						}
						return nil, nil
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		eventually(t, 5*time.Second, "requests served", func() bool { return status(t, c, "k").Counters.Admitted > 0 })
		if err := c.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		returned.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("a request ended with %v, want ErrClosed", err)
			}
		}
		if n := late.Load(); n != 0 {
			t.Fatalf("%d fns started after Shutdown returned", n)
		}
	})
}
