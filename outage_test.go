package rateltd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/faultproxy"
	"github.com/rateltd/rateltd/internal/redistest"
)

// outageClient starts a Client with mode on a private redis-server, which the test kills.
func outageClient(t *testing.T, mode FailMode, nodes int, l Limit) (*Client, *redistest.Instance) {
	t.Helper()
	srv := redistest.Fresh(t)
	c, err := New(Config{Redis: srv.Client(t), Prefix: srv.Prefix(t), OnRedisError: mode, ExpectedNodes: nodes,
		Default: l, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, srv
}

// TestG11FailClosed: with Redis down, a request fails with ErrUnavailable by its deadline and
// fn does not run; a request already waiting ends by its deadline; when Redis is back on the
// same port, the same Client works again.
func TestG11FailClosed(t *testing.T) {
	t.Parallel()
	c, srv := outageClient(t, FailClosed, 1, Limit{Max: 1, Window: time.Second})
	ctx := context.Background()
	if _, err := c.Request(ctx, "k", noop); err != nil {
		t.Fatal(err)
	}
	waiting := c.RequestAsync(ctx, "k", func(context.Context) (any, error) {
		t.Error("fn of a request that waited through the outage ran")
		return nil, nil
	}, WithTimeout(2*time.Second))
	asked := time.Now()
	waitQueued(t, c, "k", 1)
	srv.Kill()

	select {
	case r := <-waiting:
		if !errors.Is(r.Err, ErrTimeout) || time.Since(asked) > 2*time.Second+500*time.Millisecond {
			t.Fatalf("waiting request: %v after %v; want ErrTimeout by its 2s deadline", r.Err, time.Since(asked))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting request hung through the outage")
	}
	var ran atomic.Bool
	start := time.Now()
	_, err := c.Request(ctx, "k", func(context.Context) (any, error) { ran.Store(true); return nil, nil }, WithTimeout(time.Second))
	if !errors.Is(err, ErrUnavailable) || ran.Load() || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("request with Redis down: %v, ran %v, after %v; want ErrUnavailable by the deadline", err, ran.Load(), time.Since(start))
	}

	srv.Restart(t)
	eventually(t, 10*time.Second, "requests served again after Redis came back", func() bool {
		_, err := c.Request(ctx, "k2", noop, WithTimeout(time.Second))
		if err != nil {
			t.Logf("after restart: %v", err)
		}
		return err == nil
	})
	if st, err := c.Status(ctx, "k2"); err != nil || st.Used != 1 {
		t.Fatalf("status after recovery: %+v %v", st, err)
	}
}

// TestG11FailOpen: with Redis down, fn runs.
func TestG11FailOpen(t *testing.T) {
	t.Parallel()
	c, srv := outageClient(t, FailOpen, 1, Limit{Max: 1, Window: time.Hour})
	ctx := context.Background()
	srv.Kill()
	for i := range 3 {
		v, err := c.Request(ctx, "k", func(context.Context) (any, error) { return "ran", nil }, WithTimeout(time.Second))
		if err != nil || v != "ran" {
			t.Fatalf("request %d with Redis down: %v, %v", i, v, err)
		}
	}
}

// TestG11FailLocal: with Redis down, each node allows Max / ExpectedNodes per window on its
// own; a request that cannot start by its deadline fails at once.
func TestG11FailLocal(t *testing.T) {
	t.Parallel()
	const window = 500 * time.Millisecond
	c, srv := outageClient(t, FailLocal, 2, Limit{Max: 4, Window: window}) // 2 per 500ms here
	ctx := context.Background()
	srv.Kill()
	var mu sync.Mutex
	var starts []time.Time
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Request(ctx, "k", func(context.Context) (any, error) {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				return nil, nil
			}, WithTimeout(5*time.Second))
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	if len(starts) != 6 {
		t.Fatalf("%d of 6 ran", len(starts))
	}
	for i := range starts {
		n := 0
		for j := i; j < len(starts) && starts[j].Sub(starts[i]) < window-50*time.Millisecond; j++ {
			n++
		}
		if n > 2 {
			t.Fatalf("%d local starts within a window from start %d, local limit 2", n, i)
		}
	}
	if span := starts[5].Sub(starts[0]); span < 2*window-50*time.Millisecond {
		t.Fatalf("six starts over %v: faster than the local limit", span)
	}
	// Two requests fill a fresh key's local window; then a request that cannot wait for the
	// next slot, ~500ms away, fails at once. A request may first spend up to a second on
	// Redis (when the client's circuit has just closed and it tries Redis again); the window
	// is then no longer full when the last request comes, so the attempt is repeated on a new
	// key, up to five times.
	for attempt := range 5 {
		key := fmt.Sprintf("full-%d", attempt)
		var first time.Time
		for i := range 2 {
			if _, err := c.Request(ctx, key, func(context.Context) (any, error) {
				if i == 0 {
					first = time.Now()
				}
				return nil, nil
			}, WithTimeout(5*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		_, err := c.Request(ctx, key, noop, WithTimeout(50*time.Millisecond))
		took, age := time.Since(start), start.Sub(first)
		switch {
		case errors.Is(err, ErrWouldExceedDeadline) && took <= 40*time.Millisecond:
			return
		case err == nil && age < window-100*time.Millisecond:
			t.Fatalf("a request ran with the local window full (its first start %v before)", age)
		}
		t.Logf("attempt %d inconclusive: %v after %v, the window's first start %v before", attempt, err, took, age)
	}
	t.Fatal("no hopeless local request failed at once in five attempts")
}

// TestG11OutageHoldsUpOneCallerAWindow: with Redis down and its circuit open, callers go
// straight to the fail mode; when the circuit's window passes, one caller tries Redis (and
// waits up to a second for it) while the others go on at once, not all of them at that moment.
func TestG11OutageHoldsUpOneCallerAWindow(t *testing.T) {
	t.Parallel()
	c, srv := outageClient(t, FailOpen, 1, Limit{Max: 1000, Window: time.Second})
	ctx := context.Background()
	if _, err := c.Request(ctx, "k", noop); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if _, err := c.Request(ctx, "k", noop); err != nil { // meets the outage: the circuit opens
		t.Fatal(err)
	}
	const callers, span = 8, 3500 * time.Millisecond // two windows pass: two trials
	var slow, ran atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(span)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				start := time.Now()
				_, err := c.Request(ctx, "k", func(context.Context) (any, error) {
					ran.Add(1)
					return nil, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if time.Since(start) > 300*time.Millisecond {
					slow.Add(1)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	// Two trials, and a third should the machine be slow enough for the span to reach it.
	if n := slow.Load(); n > 3 || ran.Load() < 100 {
		t.Fatalf("%d requests held up over %v of an open circuit (%d ran); want at most one a window", n, span, ran.Load())
	}
	t.Logf("%d requests held up over %v of an open circuit; %d ran", slow.Load(), span, ran.Load())
}

// TestG11DurableJobsOutliveAnOutage: durable jobs enqueued before Redis is killed (with its
// append-only file on) are there when it is back on the same port: the same Clients run them,
// and a Wait begun before the outage gets its result.
func TestG11DurableJobsOutliveAnOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.FreshPersistent(t)
	cfg := Config{Redis: srv.Client(t), Prefix: srv.Prefix(t), PollInterval: 100 * time.Millisecond, LeaseTimeout: time.Second,
		Default: Limit{Max: 100, Window: time.Second, QueueTimeout: time.Minute}}
	enq, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer enq.Close()
	worker, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		ids[i] = enqueue(t, enq, "k", "echo", "job"+strconv.Itoa(i))
	}
	early := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got, err := enq.Wait(ctx, ids[0])
		if err == nil && string(got) != "job0" {
			err = fmt.Errorf("got %q", got)
		}
		early <- err
	}()
	srv.Kill()
	if _, err := enq.Enqueue(context.Background(), "k", "echo", nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Enqueue with Redis down: %v, want ErrUnavailable", err)
	}
	time.Sleep(300 * time.Millisecond)
	srv.Restart(t)
	if err := worker.Handle("echo", func(_ context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if got, err := wait(t, enq, id); err != nil || string(got) != "job"+strconv.Itoa(i) {
			t.Fatalf("Wait(%s) after the outage = %q, %v", id, got, err)
		}
	}
	if err := <-early; err != nil {
		t.Fatalf("a Wait begun before the outage: %v", err)
	}
}

// TestG11ClusterMasterDown: on a Redis Cluster, a master killed fails only the keys it serves —
// by their deadline, fn not run (FailClosed) — while keys of the other masters are served as
// before; when the master is back on its port, the same Client serves its keys again.
func TestG11ClusterMasterDown(t *testing.T) {
	t.Parallel()
	cl := redistest.FreshCluster(t)
	c, err := New(Config{Redis: cl.Client(t), Prefix: cl.Prefix(t), PollInterval: 100 * time.Millisecond,
		Default: Limit{Max: 1000, Window: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// keyA lives on master 0, keyB on another one.
	keyA, keyB := "", ""
	for i := 0; keyA == "" || keyB == ""; i++ {
		k := "k" + strconv.Itoa(i)
		if cl.MasterOf(t, k) == 0 {
			keyA = cmp.Or(keyA, k)
		} else {
			keyB = cmp.Or(keyB, k)
		}
	}
	ctx := context.Background()
	for _, k := range []string{keyA, keyB} {
		if _, err := c.Request(ctx, k, noop); err != nil {
			t.Fatalf("%s before the outage: %v", k, err)
		}
	}
	cl.Node(0).Kill()

	var ran atomic.Bool
	start := time.Now()
	_, err = c.Request(ctx, keyA, func(context.Context) (any, error) { ran.Store(true); return nil, nil }, WithTimeout(time.Second))
	if !errors.Is(err, ErrUnavailable) || ran.Load() || time.Since(start) > 2*time.Second {
		t.Fatalf("%s on the dead master: %v, ran %v, after %v; want ErrUnavailable by the deadline", keyA, err, ran.Load(), time.Since(start))
	}
	for range 20 {
		if _, err := c.Request(ctx, keyB, noop, WithTimeout(time.Second)); err != nil {
			t.Fatalf("%s on a live master, while another is down: %v", keyB, err)
		}
	}
	// Still once the others hold the dead master for failed.
	eventually(t, 10*time.Second, "the dead master held for failed", func() bool { return cl.Failed(t, 0) })
	if _, err := c.Request(ctx, keyB, noop, WithTimeout(time.Second)); err != nil {
		t.Fatalf("%s on a live master, once the dead one is taken for failed: %v", keyB, err)
	}

	cl.Node(0).Restart(t)
	eventually(t, 20*time.Second, keyA+" served again", func() bool {
		_, err := c.Request(ctx, keyA, noop, WithTimeout(time.Second))
		return err == nil
	})
}

// TestRedisLostItsMemoryWaitersRejoin: Redis restarted without persistence loses the line;
// the nodes notice (their heartbeats are gone) and put their waiting requests back in line, so
// that they are served at the limit again within seconds, not left to their deadline.
func TestRedisLostItsMemoryWaitersRejoin(t *testing.T) {
	t.Parallel()
	srv := redistest.Fresh(t)
	cfg := Config{Redis: srv.Client(t), Prefix: srv.Prefix(t), PollInterval: 100 * time.Millisecond,
		Default: Limit{Max: 5, Window: time.Second, QueueTimeout: time.Minute}}
	var cs []*Client
	for range 2 {
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	ctx := context.Background()
	var results []<-chan Result
	for i := range 16 {
		results = append(results, cs[i%2].RequestAsync(ctx, "k", noop, WithTimeout(30*time.Second)))
	}
	eventually(t, 5*time.Second, "11 waiting", func() bool { return status(t, cs[0], "k").Queued == 11 })
	srv.Restart(t)
	restarted := time.Now()
	for i, ch := range results {
		select {
		case r := <-ch:
			if r.Err != nil {
				t.Fatalf("request %d: %v", i, r.Err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("request %d still waiting %v after Redis came back empty", i, time.Since(restarted))
		}
	}
	// 11 waiting, at 5 a second: about 2 s, plus the time to notice (a poll, and the client's
	// reconnection).
	t.Logf("every waiting request served %v after the restart", time.Since(restarted).Round(10*time.Millisecond))
	if d := time.Since(restarted); d > 8*time.Second {
		t.Fatalf("served %v after the restart; want within 8s", d)
	}
}

// TestG11FailModeWhenRedisIsSilent: with FailOpen or FailLocal, a Redis that answers nothing
// (a blackhole between client and server: the Redis client waits out its read timeouts and
// retries) is an outage after one second of silence, not at the request's deadline: fn runs
// soon, well within a long deadline. Under FailClosed the request still waits for an answer
// until its deadline (TestChaosBlackhole).
func TestG11FailModeWhenRedisIsSilent(t *testing.T) {
	t.Parallel()
	for mode, name := range map[FailMode]string{FailOpen: "FailOpen", FailLocal: "FailLocal"} {
		srv := redistest.Server(t)
		p, err := faultproxy.Start(srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		rdb := redis.NewClient(&redis.Options{Addr: p.Addr()}) // default options, as a user's
		t.Cleanup(func() { rdb.Close() })
		c, err := New(Config{Redis: rdb, Prefix: srv.Prefix(t), OnRedisError: mode, Default: Limit{Max: 100, Window: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Request(context.Background(), "k", noop); err != nil {
			t.Fatal(err)
		}
		p.Blackhole(faultproxy.Both)
		start := time.Now()
		v, err := c.Request(context.Background(), "k", func(context.Context) (any, error) { return "ran", nil },
			WithTimeout(20*time.Second))
		// One second of silence, with a margin for a loaded machine; the Redis client alone
		// gives up only after its read timeout (3s) and retries.
		if took := time.Since(start); err != nil || v != "ran" || took > 2500*time.Millisecond {
			t.Errorf("%s with Redis silent: %v, %v after %v; want fn run within about 1s", name, v, err, took)
		}
		p.Heal()
	}
}
