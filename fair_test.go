package rateltd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// fairRun queues nA durable jobs of tenant "a" and then nB of tenant "b" on a paused key
// (weights as given), runs them on one worker, so that they run in the order granted, and
// returns the tenants in that order up to b's last. The handler is named after the key: the
// harness's other Clients run none of its jobs.
func fairRun(t *testing.T, h *harness, key string, nA, nB int, weights map[string]int) []string {
	t.Helper()
	c := h.client(Config{Workers: 1, PollInterval: 50 * time.Millisecond,
		Limits: map[string]Limit{key: {Max: 100_000, Window: time.Second, MaxQueue: 5000, QueueTimeout: time.Minute, TenantWeights: weights}}})
	ctx := context.Background()
	var mu sync.Mutex
	var order []string
	bDone := make(chan struct{})
	c.Handle(key, func(_ context.Context, p []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, string(p))
		if strings.Count(strings.Join(order, ""), "b") == nB {
			close(bDone)
		}
		return nil, nil
	})
	if err := c.Pause(ctx, key); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []struct {
		name string
		n    int
	}{{"a", nA}, {"b", nB}} {
		payloads := make([][]byte, tn.n)
		for i := range payloads {
			payloads[i] = []byte(tn.name)
		}
		if _, err := c.EnqueueMany(ctx, key, key, payloads, WithTenant(tn.name)); err != nil {
			t.Fatal(err)
		}
	}
	st := status(t, c, key)
	if st.Queued != nA+nB || st.TenantsWaiting != 2 || st.Tenants[0] != (TenantWaiting{"a", nA}) || st.Tenants[1] != (TenantWaiting{"b", nB}) {
		t.Fatalf("queued %d, tenants %v (%d), want %d, a %d and b %d", st.Queued, st.Tenants, st.TenantsWaiting, nA+nB, nA, nB)
	}
	if err := c.Resume(ctx, key); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bDone:
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Fatalf("b's %d jobs did not all run: %d ran, %v", nB, len(order), status(t, c, key))
	}
	if err := c.Reset(ctx, key); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, tn := range order {
		if tn == "b" {
			nB--
		}
		if nB == 0 {
			return order[:i+1]
		}
	}
	return order
}

// TestG15FairShares: tenant a queues 1,000 durable jobs, then tenant b queues 10 (and, apart,
// 100); while b has any waiting, the grants go to a and b in the ratio of their weights, 1:1
// and 3:1 for b — within one grant for 10, within 5% for 100. First come first served, b's
// would wait for all of a's.
func TestG15FairShares(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		for _, tc := range []struct {
			nB int
			wB int
		}{{10, 1}, {10, 3}, {100, 1}, {100, 3}} {
			key := fmt.Sprintf("fair-%d-%d", tc.nB, tc.wB)
			order := fairRun(t, h, key, 1000, tc.nB, map[string]int{"b": tc.wB})
			a := len(order) - tc.nB
			want := float64(tc.nB) / float64(tc.wB) // a's grants while b had some waiting
			slack := max(1, 0.05*want)
			if math.Abs(float64(a)-want) > slack {
				t.Errorf("%s: a got %d grants while b's %d (weight %d) ran, want %.1f ± %.1f", key, a, tc.nB, tc.wB, want, slack)
			}
		}
	})
}

// TestG15OneTurn: two tenants each with 100 requests waiting on a key that starts one every
// 20ms; a third tenant's single request, queued once the line moves, starts within one turn
// of the rotation (two grants, one more for a grant made while it was admitted), not after the
// 190 waiting before it. Meanwhile a and b share the grants evenly.
func TestG15OneTurn(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{PollInterval: 50 * time.Millisecond, Default: Limit{Algorithm: TokenBucket, Max: 50, Window: time.Second,
			Burst: 1, MaxQueue: 5000, QueueTimeout: time.Minute}})
		ctx := context.Background()
		var mu sync.Mutex
		var order []string
		started := func(tn string) func(context.Context) (any, error) {
			return func(context.Context) (any, error) {
				mu.Lock()
				order = append(order, tn)
				mu.Unlock()
				return nil, nil
			}
		}
		if err := c.Pause(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		var results []<-chan Result
		for i := range 200 {
			tn := []string{"a", "b"}[i%2]
			results = append(results, c.RequestAsync(ctx, "k", started(tn), WithTenant(tn)))
		}
		waitQueued(t, c, "k", 200)
		if err := c.Resume(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		count := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(order)
		}
		eventually(t, 10*time.Second, "10 grants", func() bool { return count() >= 10 })
		before := count()
		if r := <-c.RequestAsync(ctx, "k", started("c"), WithTenant("c")); r.Err != nil {
			t.Fatal(r.Err)
		}
		mu.Lock()
		at := len(order) - 1
		as := strings.Count(strings.Join(order, ""), "a")
		mu.Unlock()
		if order[at] != "c" || at-before > 3 {
			t.Errorf("c's request started after %d grants since it came, want at most 3 (one turn of 2, and one in flight)", at-before)
		}
		if bs := at - as; as < at/2-1 || bs < at/2-1 {
			t.Errorf("a %d, b %d of %d grants: want an even share", as, bs, at)
		}
		if err := c.Reset(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		for _, ch := range results {
			if r := <-ch; r.Err != nil && !errors.Is(r.Err, ErrEvicted) {
				t.Fatal(r.Err)
			}
		}
	})
}

// TestG15PriorityAboveTenants: a high-priority request of a tenant with 50 waiting starts
// before any normal one of another tenant; within a priority, the tenants take turns.
func TestG15PriorityAboveTenants(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Workers: 1, Default: Limit{Max: 100_000, Window: time.Second, QueueTimeout: time.Minute}})
		ctx := context.Background()
		var mu sync.Mutex
		var order []string
		done := make(chan struct{})
		c.Handle("p", func(_ context.Context, p []byte) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, string(p))
			if len(order) == 8 {
				close(done)
			}
			return nil, nil
		})
		if err := c.Pause(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		enqueue := func(tn, p string, n int, prio Priority) {
			for range n {
				if _, err := c.Enqueue(ctx, "k", "p", []byte(p), WithTenant(tn), WithPriority(prio)); err != nil {
					t.Fatal(err)
				}
			}
		}
		enqueue("a", "a", 4, PriorityNormal)
		enqueue("b", "b", 2, PriorityNormal)
		enqueue("a", "A", 2, PriorityHigh)
		if err := c.Resume(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("jobs did not run")
		}
		mu.Lock()
		defer mu.Unlock()
		if got := strings.Join(order, ""); got != "AAababaa" {
			t.Fatalf("order %q, want AAababaa: high priority first, then a and b in turn", got)
		}
	})
}

// TestG15MaxQueuePerTenant: a tenant with MaxQueuePerTenant waiting is refused with
// ErrQueueFull while another tenant, and requests of no tenant, still queue; a tenant's
// count and state go with its last ticket.
func TestG15MaxQueuePerTenant(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 100, Window: time.Second, MaxQueuePerTenant: 3, QueueTimeout: time.Minute}})
		ctx := context.Background()
		if err := c.Pause(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		ok := func(context.Context) (any, error) { return nil, nil }
		var waiting []<-chan Result
		for range 3 {
			waiting = append(waiting, c.RequestAsync(ctx, "k", ok, WithTenant("a")))
		}
		waitQueued(t, c, "k", 3)
		if _, err := c.Request(ctx, "k", ok, WithTenant("a")); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("a's 4th: %v, want ErrQueueFull", err)
		}
		waiting = append(waiting, c.RequestAsync(ctx, "k", ok, WithTenant("b")), c.RequestAsync(ctx, "k", ok))
		waitQueued(t, c, "k", 5)
		st := status(t, c, "k")
		if want := []TenantWaiting{{"a", 3}, {"", 1}, {"b", 1}}; fmt.Sprint(st.Tenants) != fmt.Sprint(want) {
			t.Fatalf("tenants %v, want %v", st.Tenants, want)
		}
		if err := c.Resume(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		for _, ch := range waiting {
			if r := <-ch; r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		if st := status(t, c, "k"); st.Tenants != nil || st.TenantsWaiting != 0 {
			t.Fatalf("tenants %v after the line emptied, want none", st.Tenants)
		}
		if h.rdb != nil {
			n, err := h.rdb.Exists(ctx, h.prefix+":{k}:fair").Result()
			if err != nil || n != 0 {
				t.Fatalf("the line's fair state is left after its last ticket (%d, %v)", n, err)
			}
		}
	})
}

// TestG15Validation: bad tenants and weights are refused.
func TestG15Validation(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ok := func(context.Context) (any, error) { return nil, nil }
	for _, tn := range []string{"a,b", "a=b", "{a}", strings.Repeat("x", 65), "a\n"} {
		if _, err := c.Request(context.Background(), "k", ok, WithTenant(tn)); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("WithTenant(%q): %v, want ErrInvalidConfig", tn, err)
		}
	}
	for _, l := range []Limit{
		{Max: 1, Window: time.Second, TenantWeights: map[string]int{"a": 0}},
		{Max: 1, Window: time.Second, TenantWeights: map[string]int{"a": 1001}},
		{Max: 1, Window: time.Second, TenantWeights: map[string]int{"a,b": 2}},
		{Max: 1, Window: time.Second, MaxQueuePerTenant: -1},
	} {
		if err := l.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", l, err)
		}
	}
}

// TestG15JobsKeepTheirTenant: a durable job keeps its tenant when it joins its line later
// (WithDelay) and when it goes back to it after a failed run: on a paused key it waits as its
// tenant's, and it runs once the key resumes.
func TestG15JobsKeepTheirTenant(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{PollInterval: 50 * time.Millisecond, RetryBackoff: 50 * time.Millisecond,
			Default: Limit{Max: 1000, Window: time.Second, QueueTimeout: time.Minute}})
		ctx := context.Background()
		var mu sync.Mutex
		runs := 0
		c.Handle("t", func(ctx context.Context, _ []byte) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			if runs++; runs == 1 { // its retry finds the key paused, and waits in line
				if err := c.Pause(ctx, "r"); err != nil {
					return nil, err
				}
				return nil, errors.New("first run fails")
			}
			return nil, nil
		})
		retried, err := c.Enqueue(ctx, "r", "t", nil, WithTenant("acct_r"), WithMaxRetries(1))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the retried job waiting as acct_r's", func() bool {
			mu.Lock()
			ran := runs
			mu.Unlock()
			st := status(t, c, "r")
			return ran == 1 && st.Paused && st.JobsRunning == 0 && st.TenantsWaiting == 1 && st.Tenants[0] == TenantWaiting{"acct_r", 1}
		})
		if err := c.Resume(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(ctx, retried); err != nil {
			t.Fatalf("the retried job: %v", err)
		}
		if err := c.Pause(ctx, "s"); err != nil {
			t.Fatal(err)
		}
		later, err := c.Enqueue(ctx, "s", "t", nil, WithTenant("acct_s"), WithDelay(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the scheduled job waiting as acct_s's", func() bool {
			st := status(t, c, "s")
			return st.TenantsWaiting == 1 && st.Tenants[0] == TenantWaiting{"acct_s", 1}
		})
		if err := c.Resume(ctx, "s"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(ctx, later); err != nil {
			t.Fatalf("the scheduled job: %v", err)
		}
		if st := status(t, c, "s"); st.Tenants != nil {
			t.Fatalf("tenants %v after the job ran", st.Tenants)
		}
	})
}
