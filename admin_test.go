package rateltd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"
)

func noop(context.Context) (any, error) { return nil, nil }

// TestCheckConsumesNothing: Check reads the window and the line and changes neither.
func TestCheckConsumesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 3, Window: time.Minute}})
		ctx := context.Background()
		for range 10 {
			d, err := c.Check(ctx, "k")
			if err != nil || !d.Allowed || d.Remaining != 3 {
				t.Fatalf("Check on an empty key = %+v, %v; want allowed, 3 remaining", d, err)
			}
		}
		if st := status(t, c, "k"); st.Used != 0 || st.Remaining != 3 {
			t.Fatalf("after 10 Checks: used %d, remaining %d; want 0, 3", st.Used, st.Remaining)
		}
		for range 3 {
			if _, err := c.Request(ctx, "k", noop); err != nil {
				t.Fatal(err)
			}
		}
		d, err := c.Check(ctx, "k")
		if err != nil || d.Allowed || d.Remaining != 0 {
			t.Fatalf("Check on a full key = %+v, %v; want refused, 0 remaining", d, err)
		}
		if d.RetryAfter <= 50*time.Second || d.RetryAfter > time.Minute || d.ResetAfter <= 50*time.Second || d.ResetAfter > time.Minute {
			t.Fatalf("RetryAfter %v, ResetAfter %v; want both just under a minute", d.RetryAfter, d.ResetAfter)
		}
		if err := c.Pause(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if d, _ := c.Check(ctx, "k"); d.Allowed || d.RetryAfter != -1 {
			t.Fatalf("Check on a paused key = %+v; want refused with RetryAfter -1", d)
		}
	})
}

// TestStatusShowsTheLine: Status counts the line per priority, the oldest wait and the counters.
// A request with no priority, or with a Priority left at its zero value, waits at Normal.
func TestStatusShowsTheLine(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 1, Window: time.Minute, QueueTimeout: time.Hour}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if _, err := c.Request(ctx, "k", noop); err != nil {
			t.Fatal(err)
		}
		first := time.Now()
		var chans []<-chan Result
		var unset struct{ P Priority } // a field of a caller's struct, left at its zero value
		for _, opts := range [][]Option{{WithPriority(PriorityNormal)}, {}, {WithPriority(unset.P)}, {WithPriority(PriorityHigh)},
			{WithPriority(PriorityLow)}} {
			chans = append(chans, c.RequestAsync(ctx, "k", noop, opts...))
		}
		waitQueued(t, c, "k", 5)
		time.Sleep(50 * time.Millisecond)
		st := status(t, c, "k")
		want := map[Priority]int{PriorityLow: 1, PriorityNormal: 3, PriorityHigh: 1, PriorityCritical: 0}
		if !maps.Equal(st.QueuedByPriority, want) || st.Used != 1 || st.Remaining != 0 || st.Limit.Max != 1 || st.Key != "k" {
			t.Fatalf("status %+v; want queued %v, used 1, remaining 0, max 1", st, want)
		}
		if st.OldestWait < 40*time.Millisecond || st.OldestWait > time.Since(first)+50*time.Millisecond {
			t.Fatalf("OldestWait %v; the first waited about %v", st.OldestWait, time.Since(first))
		}
		if st.Counters.Admitted != 1 || st.Counters.Queued != 5 || st.Paused {
			t.Fatalf("counters %+v, paused %v; want 1 admitted, 5 queued, not paused", st.Counters, st.Paused)
		}
		cancel()
		for _, ch := range chans {
			if r := <-ch; !errors.Is(r.Err, context.Canceled) {
				t.Fatalf("cancelled waiter: %v", r.Err)
			}
		}
		eventually(t, 5*time.Second, "cancelled counted, line empty", func() bool {
			st := status(t, c, "k")
			return st.Queued == 0 && st.Counters.Cancelled == 5
		})
	})
}

// TestSetLimitEverywhere: a limit set at run time reaches every node, ranks between the exact
// key's configured limit and its group's, frees waiting requests when it rises, and goes away
// when set to the zero Limit.
func TestSetLimitEverywhere(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := Config{
			Default: Limit{Max: 1, Window: time.Hour, QueueTimeout: 10 * time.Hour},
			Limits: map[string]Limit{
				"fixed": {Max: 2, Window: time.Hour, QueueTimeout: 10 * time.Hour},
				"api":   {Max: 7, Window: time.Hour, QueueTimeout: 10 * time.Hour},
			},
		}
		c1, c2 := h.client(cfg), h.client(cfg)
		ctx := context.Background()
		maxOn := func(c *Client, key string) int { return status(t, c, key).Limit.Max }

		if err := c1.SetLimit(ctx, "fixed", Limit{Max: 5, Window: time.Hour, QueueTimeout: 10 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		if err := c1.SetLimit(ctx, "api:y", Limit{Max: 4, Window: time.Hour, QueueTimeout: 10 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "runtime limit seen by the other node", func() bool { return maxOn(c2, "api:y") == 4 })
		if m := maxOn(c2, "fixed"); m != 2 {
			t.Fatalf("configured exact limit overridden: max %d, want 2", m)
		}
		if m := maxOn(c2, "api:z"); m != 7 {
			t.Fatalf("group limit: max %d, want 7", m)
		}
		if err := c1.SetLimit(ctx, "api:y", Limit{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "runtime limit removed everywhere", func() bool { return maxOn(c2, "api:y") == 7 })

		// A waiting request runs as soon as a higher limit allows it, not after the hour.
		if _, err := c2.Request(ctx, "slow", noop); err != nil {
			t.Fatal(err)
		}
		ch := c2.RequestAsync(ctx, "slow", func(context.Context) (any, error) { return "ran", nil }, WithTimeout(9*time.Hour))
		waitQueued(t, c2, "slow", 1)
		if err := c1.SetLimit(ctx, "slow", Limit{Max: 2, Window: time.Hour, QueueTimeout: 10 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-ch:
			if r.Err != nil || r.Value != "ran" {
				t.Fatalf("waiter after the limit rose: %+v", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("waiter not granted after the limit rose")
		}
	})
}

// TestResetEvictsWaiters: Reset empties the window and the line; every waiter, on any node,
// ends with ErrEvicted at once.
func TestResetEvictsWaiters(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := Config{Default: Limit{Max: 1, Window: time.Hour, QueueTimeout: 10 * time.Hour}}
		c1, c2 := h.client(cfg), h.client(cfg)
		ctx := context.Background()
		if _, err := c1.Request(ctx, "k", noop); err != nil {
			t.Fatal(err)
		}
		chans := []<-chan Result{c1.RequestAsync(ctx, "k", noop, WithTimeout(9*time.Hour)), c2.RequestAsync(ctx, "k", noop, WithTimeout(9*time.Hour))}
		waitQueued(t, c1, "k", 2)
		if err := c1.Reset(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		for i, ch := range chans {
			select {
			case r := <-ch:
				if !errors.Is(r.Err, ErrEvicted) {
					t.Fatalf("waiter %d after Reset: %v, want ErrEvicted", i, r.Err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("waiter %d not ended by Reset", i)
			}
		}
		if st := status(t, c2, "k"); st.Used != 0 || st.Queued != 0 {
			t.Fatalf("after Reset: used %d, queued %d", st.Used, st.Queued)
		}
		if _, err := c2.Request(ctx, "k", noop, WithTimeout(time.Millisecond)); err != nil {
			t.Fatalf("request after Reset: %v", err)
		}
	})
}

// TestOverflow: a full line rejects (ErrQueueFull) or drops its oldest request, whose caller,
// on whichever node, gets ErrEvicted at once; MaxQueue -1 never queues.
func TestOverflow(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := Config{Limits: map[string]Limit{
			"reject": {Max: 1, Window: time.Hour, QueueTimeout: 10 * time.Hour, MaxQueue: 2},
			"drop":   {Max: 1, Window: time.Hour, QueueTimeout: 10 * time.Hour, MaxQueue: 2, Overflow: DropOldest},
			"never":  {Max: 1, Window: time.Hour, QueueTimeout: 10 * time.Hour, MaxQueue: -1},
		}}
		c1, c2 := h.client(cfg), h.client(cfg)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for _, k := range []string{"reject", "drop", "never"} {
			if _, err := c1.Request(ctx, k, noop); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c1.Request(ctx, "never", noop); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("MaxQueue -1 over the limit: %v, want ErrQueueFull", err)
		}

		rej := []<-chan Result{c1.RequestAsync(ctx, "reject", noop, WithTimeout(9*time.Hour)), c2.RequestAsync(ctx, "reject", noop, WithTimeout(9*time.Hour))}
		waitQueued(t, c1, "reject", 2)
		if _, err := c1.Request(ctx, "reject", noop, WithTimeout(9*time.Hour)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("third in a line of 2: %v, want ErrQueueFull", err)
		}

		oldest := c2.RequestAsync(ctx, "drop", noop, WithTimeout(9*time.Hour))
		waitQueued(t, c1, "drop", 1)
		second := c1.RequestAsync(ctx, "drop", noop, WithTimeout(9*time.Hour))
		waitQueued(t, c1, "drop", 2)
		// The third's earliest start counts the line after the eviction: it would miss a
		// deadline 2h away (the third slot) but not one 2h30m away (the second).
		third := c1.RequestAsync(ctx, "drop", noop, WithTimeout(150*time.Minute))
		select {
		case r := <-oldest:
			if !errors.Is(r.Err, ErrEvicted) {
				t.Fatalf("oldest after DropOldest: %v, want ErrEvicted", r.Err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the evicted caller on another node was not told")
		}
		st := status(t, c1, "drop")
		if st.Queued != 2 || st.Counters.Evicted != 1 || status(t, c1, "reject").Counters.Rejected != 1 {
			t.Fatalf("drop: queued %d, evicted %d; reject: %+v", st.Queued, st.Counters.Evicted, status(t, c1, "reject").Counters)
		}
		cancel()
		for _, ch := range append(rej, second, third) {
			if r := <-ch; !errors.Is(r.Err, context.Canceled) {
				t.Fatalf("waiter still in line: %v, want context.Canceled", r.Err)
			}
		}
	})
}

// TestListKeys: every key with state is listed, page by page, once, and nothing else —
// though each key has several Redis structures (window, counters, pause) that SCAN finds in
// batches of its own, and its counters are written while the listing goes on, by the reads of
// the keys listed; on a cluster, the pages go through each master in turn.
func TestListKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{PollInterval: time.Minute}) // no poll writes the counters meanwhile
		ctx := context.Background()
		want := map[string]bool{}
		for i := range 300 {
			k := fmt.Sprintf("list:%d", i)
			want[k] = true
			if _, err := c.Request(ctx, k, noop); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				if err := c.Pause(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.Pause(ctx, "only-paused"); err != nil {
			t.Fatal(err)
		}
		want["only-paused"] = true
		// The keys' counters are not written yet (the node writes them at its polls), and each
		// page's keys are read as GET /v1/keys reads them: a Status, which writes the key's
		// counters, its first structure in a listing. A page that did not write them first
		// would list those keys again when SCAN reaches their counters.
		got := map[string]int{}
		cursor, pages := "", 0
		for {
			keys, next, err := c.ListKeys(ctx, cursor, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				got[k]++
				if _, err := c.Status(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			pages++
			if next == "" {
				break
			}
			cursor = next
		}
		for k := range want {
			if got[k] != 1 {
				t.Errorf("%q listed %d times", k, got[k])
			}
		}
		// Over 900 Redis structures: one SCAN batch (about 100 per call) cannot hold them all.
		if len(got) != len(want) || pages < 3 {
			t.Fatalf("listed %d keys over %d pages, want %d over 3 or more", len(got), pages, len(want))
		}
		if _, _, err := c.ListKeys(ctx, "not a cursor", 10); !errors.Is(err, ErrInvalidConfig) && h.kind != "memory" {
			t.Errorf("ListKeys with a bad cursor: %v, want ErrInvalidConfig", err)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAlgorithmChange: a key whose algorithm changes at run time carries on, with a fresh
// window of the new kind; Reset clears the windows of every algorithm.
func TestAlgorithmChange(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 2, Window: time.Hour}})
		ctx := context.Background()
		for _, alg := range []Algorithm{SlidingWindow, TokenBucket, FixedWindow, SlidingWindow} {
			if err := c.SetLimit(ctx, "k", Limit{Algorithm: alg, Max: 2, Window: time.Hour}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Request(ctx, "k", noop, WithTimeout(time.Second)); err != nil {
				t.Fatalf("%v: %v", alg, err)
			}
		}
		if st := status(t, c, "k"); st.Used != 2 {
			t.Fatalf("sliding window used %d after two sliding grants", st.Used)
		}
		if err := c.Reset(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		for _, alg := range []Algorithm{SlidingWindow, TokenBucket, FixedWindow} {
			if err := c.SetLimit(ctx, "k", Limit{Algorithm: alg, Max: 2, Window: time.Hour}); err != nil {
				t.Fatal(err)
			}
			if st := status(t, c, "k"); st.Used != 0 {
				t.Fatalf("%v window used %d after Reset", alg, st.Used)
			}
		}
	})
}
