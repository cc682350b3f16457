package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// failing is a backend whose start fails at step failAt (1: the heartbeat, 2: loading the
// runtime configuration), to reach New's error paths.
type failing struct {
	queue.Backend
	failAt int
}

var errInjected = errors.New("injected")

func (f *failing) Heartbeat(ctx context.Context, node []byte, ttl time.Duration) (bool, error) {
	if f.failAt == 1 {
		return false, errInjected
	}
	return f.Backend.Heartbeat(ctx, node, ttl)
}

func (f *failing) LoadRuntime(ctx context.Context) (queue.Runtime, error) {
	if f.failAt <= 2 {
		return queue.Runtime{}, errInjected
	}
	return f.Backend.LoadRuntime(ctx)
}

// TestStartFailureLeavesNothing: whichever step of a node's start fails, the job context is
// cancelled and the error says that the backend is unavailable, keeping the cause.
func TestStartFailureLeavesNothing(t *testing.T) {
	for step := 1; step <= 2; step++ {
		n := &Node{be: &failing{Backend: queue.NewMemory(), failAt: step}, cfg: testOptions(), log: newLogLimiter(slog.Default())}
		err := n.start(context.Background())
		if !errors.Is(err, errInjected) {
			t.Fatalf("step %d: err = %v; want the injected one", step, err)
		}
		if n.jobCtx.Err() == nil {
			t.Errorf("step %d failed and the job context is still live", step)
		}
	}
	_, err := New(context.Background(), &failing{Backend: queue.NewMemory(), failAt: 1}, testOptions())
	if !errors.Is(err, config.ErrUnavailable) || !errors.Is(err, errInjected) {
		t.Errorf("New: %v; want ErrUnavailable and the cause", err)
	}
}

// testOptions are Options as rateltd.Config's defaults make them.
func testOptions() Options {
	return Options{Default: config.DefaultLimit, BatchSize: config.DefaultBatchSize, PollInterval: config.DefaultPollInterval,
		ClaimTimeout: config.DefaultClaimTimeout, StatsTTL: config.DefaultStatsTTL, Logger: slog.Default(),
		Workers: config.DefaultWorkers, LeaseTimeout: config.DefaultLeaseTimeout, ResultTTL: config.DefaultResultTTL,
		MaxPayload: config.DefaultMaxPayload, RetryBackoff: config.DefaultRetryBackoff}
}

// TestLimitOrder: a key's limit is the one configured for it, then the one set at run time,
// then its group's, then the default, with the defaults of a Limit filled in.
func TestLimitOrder(t *testing.T) {
	exact := config.Limit{Max: 1, Window: time.Second}
	group := config.Limit{Max: 2, Window: time.Second}
	runtime := config.Limit{Max: 3, Window: time.Second}
	def := config.Limit{Max: 4, Window: time.Second}
	o := Options{Limits: map[string]config.Limit{"stripe:acct_1": exact, "stripe": group}, Default: def}
	rt := map[string]config.Limit{"stripe:acct_1": {Max: 9, Window: time.Second}, "stripe:acct_2": runtime}
	for key, want := range map[string]int{"stripe:acct_1": 1, "stripe:acct_2": 3, "stripe:acct_3": 2, "openai": 4} {
		if got := o.limit(key, rt); got.Max != want {
			t.Errorf("limit(%q).Max = %d, want %d", key, got.Max, want)
		}
	}
	if got := o.limit("openai", nil); got.MaxQueue != config.DefaultMaxQueue || got.QueueTimeout != config.DefaultQueueTimeout {
		t.Errorf("defaults not applied: %+v", got)
	}
}

// grantCounter counts the grant steps run per key.
type grantCounter struct {
	queue.Backend
	mu    sync.Mutex
	steps map[string]int
}

func (g *grantCounter) Grant(ctx context.Context, keys []string, ps []queue.Params, a queue.GrantArgs) ([]queue.GrantReply, []error) {
	g.mu.Lock()
	for _, k := range keys {
		g.steps[k]++
	}
	g.mu.Unlock()
	return g.Backend.Grant(ctx, keys, ps, a)
}

func (g *grantCounter) count(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.steps[key]
}

// TestEnqueueWithoutHandlerGrantsNothing: a node that runs none of the handlers does not run a
// grant step per Enqueue (it could grant none of those jobs, only walk past them); it looks at
// the line when it opens, as for any key.
func TestEnqueueWithoutHandlerGrantsNothing(t *testing.T) {
	be := &grantCounter{Backend: queue.NewMemory(), steps: map[string]int{}}
	o := testOptions()
	o.PollInterval = time.Hour // keep the poll's visits out of the count
	n, err := New(context.Background(), be, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx := context.Background()
	waitFor := func(key string, least int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); be.count(key) < least; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no grant step on %q within 10s", key)
			}
		}
	}
	if _, err := n.Enqueue(ctx, Job{Key: "jobs", Handler: "elsewhere", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	waitFor("jobs", 1) // the line opened: looked at once
	before := be.count("jobs")
	for range 20 {
		if _, err := n.Enqueue(ctx, Job{Key: "jobs", Handler: "elsewhere", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	// A step on another key, asked for after the Enqueues, runs no earlier than theirs would.
	n.Recheck("probe")
	waitFor("probe", 1)
	if got := be.count("jobs") - before; got != 0 {
		t.Errorf("20 jobs enqueued on a node without their handler ran %d grant steps, want 0", got)
	}
}

// countWriter records AddCounters' calls; the keys in lose have their next batch applied and
// its reply lost (an error after the write), as a connection cut after Redis ran it; while
// down, every call fails and writes nothing, as with Redis unreachable.
type countWriter struct {
	queue.Backend
	mu    sync.Mutex
	calls []int // the keys of each call
	lose  map[string]bool
	down  bool
}

func (w *countWriter) AddCounters(ctx context.Context, calls []queue.CountCall) []error {
	w.mu.Lock()
	down := w.down
	w.calls = append(w.calls, len(calls))
	w.mu.Unlock()
	if down {
		errs := make([]error, len(calls))
		for i := range errs {
			errs[i] = errInjected
		}
		return errs
	}
	errs := w.Backend.AddCounters(ctx, calls)
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, c := range calls {
		if w.lose[c.Key] {
			delete(w.lose, c.Key)
			errs[i] = errInjected
		}
	}
	return errs
}

// countNode starts a node on be whose loop writes no counts of its own, and counts
// 2*maxCountCalls+10 keys, k0 on, succeeded(i) times each.
func countNode(t *testing.T, be *countWriter, succeeded func(i int) int) (*Node, int) {
	t.Helper()
	o := testOptions()
	o.PollInterval = time.Hour // the loop's own flush stays out of the way
	n, err := New(context.Background(), be, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	const keys = 2*maxCountCalls + 10
	for i := range keys {
		for range succeeded(i) {
			n.count(fmt.Sprintf("k%d", i), queue.CountSucceeded)
		}
	}
	return n, keys
}

// checkCounts fails the test unless AddCounters took calls keys a call, and unless each of the
// keys k0 on was written as succeeded want(i) times.
func checkCounts(t *testing.T, be *countWriter, n *Node, calls []int, keys int, want func(i int) int) {
	t.Helper()
	be.mu.Lock()
	got := slices.Clone(be.calls)
	be.mu.Unlock()
	if !slices.Equal(got, calls) {
		t.Errorf("AddCounters took %v keys a call; want %v", got, calls)
	}
	for i := range keys {
		key := fmt.Sprintf("k%d", i)
		st, err := be.State(context.Background(), key, n.Params(key))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Counters[queue.CountSucceeded]; got != int64(want(i)) {
			t.Fatalf("%s: succeeded %d; want %d", key, got, want(i))
		}
	}
}

// TestCountsFlushedTogether: the counts of many keys are written maxCountCalls keys a round
// trip, not a round trip per key; a key whose batch's reply was lost keeps it, sends it again
// as it was with its later counts beside it, and is counted once.
func TestCountsFlushedTogether(t *testing.T) {
	be := &countWriter{Backend: queue.NewMemory(), lose: map[string]bool{"k7": true}}
	n, keys := countNode(t, be, func(i int) int { return 1 + i%3 })
	ctx := context.Background()
	if err := n.FlushAllCounts(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("flush: %v; want the lost reply's error", err)
	}
	n.count("k7", queue.CountSucceeded) // counted while k7's batch waits to be sent again
	if err := n.FlushAllCounts(ctx); err != nil {
		t.Fatal(err)
	}
	// Three round trips for every key's first batch, then k7's batch again and its count since.
	checkCounts(t, be, n, []int{maxCountCalls, maxCountCalls, 10, 1, 1}, keys, func(i int) int {
		if i == 7 {
			return 2 + i%3
		}
		return 1 + i%3
	})
}

// TestCountsWaitOutAnOutage: a flush that finds Redis unreachable stops at its first round
// trip, which failed for every key, rather than waiting for the same failure once per
// maxCountCalls keys; every key keeps its counts, written once when Redis is back.
func TestCountsWaitOutAnOutage(t *testing.T) {
	be := &countWriter{Backend: queue.NewMemory(), down: true}
	n, keys := countNode(t, be, func(int) int { return 1 })
	ctx := context.Background()
	for range 2 {
		if err := n.FlushAllCounts(ctx); !errors.Is(err, errInjected) {
			t.Fatalf("flush with Redis down: %v; want its error", err)
		}
	}
	n.count("k0", queue.CountSucceeded) // counted during the outage
	be.mu.Lock()
	be.down = false
	be.mu.Unlock()
	if err := n.FlushAllCounts(ctx); err != nil {
		t.Fatal(err)
	}
	// One round trip for each flush while down; then every key's batch, and k0's count since.
	checkCounts(t, be, n, []int{maxCountCalls, maxCountCalls, maxCountCalls, maxCountCalls, 10, 1}, keys, func(i int) int {
		if i == 0 {
			return 2
		}
		return 1
	})
}

// TestClockOffsetKeepsTheBestReading: a reply that took long to arrive reads the server's clock
// as further behind the local one than it is; the node keeps the best reading of the last
// offsetMemory, so that slots are not granted late by the latency of whichever reply came
// last, and follows a clock stepped back once that reading has aged.
func TestClockOffsetKeepsTheBestReading(t *testing.T) {
	o := testOptions()
	o.PollInterval = time.Hour // no reply of the node's own meanwhile
	n, err := New(context.Background(), queue.NewMemory(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	base := n.offset.Load()
	n.observe(time.Now().UnixMicro() + base - 5000) // a reply 5ms late
	if got := n.offset.Load(); got != base {
		t.Fatalf("a late reading moved the offset by %dµs", got-base)
	}
	n.observe(time.Now().UnixMicro() + base + 3000) // a better reading
	// The reading is taken a little after the clock is read here: up to 1ms less.
	if got := n.offset.Load() - base; got < 2000 || got > 3000 {
		t.Fatalf("a better reading moved the offset by %dµs, want about 3000", got)
	}
	time.Sleep(offsetMemory + 10*time.Millisecond)
	n.observe(time.Now().UnixMicro() + base - 7000) // the clock stepped back 7ms
	if got := n.offset.Load() - base; got > -7000 || got < -8000 {
		t.Fatalf("after %v, the offset moved by %dµs, want about -7000", offsetMemory, got)
	}
}
