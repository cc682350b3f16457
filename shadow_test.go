package rateltd

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Shadow limits: every test runs on every backend (memory, redis, cluster).

// shadowBurst has cs share n requests of key at once and returns the start times of their fns.
func shadowBurst(t *testing.T, cs []*Client, key string, n int) []time.Time {
	t.Helper()
	starts := make([]time.Time, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			_, err := cs[i%len(cs)].Request(context.Background(), key, func(context.Context) (any, error) {
				starts[i] = time.Now()
				return nil, nil
			})
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}()
	}
	close(gate)
	wg.Wait()
	return starts
}

// TestShadowRunsAllAndCounts: on a shadow limit of 5 a second, 20 requests from two nodes all
// run at once (nothing is queued; they start within less than the window, where 15 would wait
// a second or more were the limit enforced); Status shows the limit as shadow and counts 5
// allowed and 15 that would have queued, each for at most the window. On a key that never
// queues, the 15 would have been refused. With Shadow turned off (SetLimit), the limit binds:
// the window still holds the 20, and requests wait in line.
func TestShadowRunsAllAndCounts(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cs := h.clients(2, Config{Limits: map[string]Limit{
			"watched": {Max: 5, Window: time.Second, Shadow: true},
			"never":   {Max: 5, Window: time.Second, MaxQueue: -1, Shadow: true},
		}})
		starts := shadowBurst(t, cs, "watched:a", 20)
		first, last := starts[0], starts[0]
		for _, s := range starts {
			if s.Before(first) {
				first = s
			}
			if s.After(last) {
				last = s
			}
		}
		if spread := last.Sub(first); spread >= 900*time.Millisecond {
			t.Errorf("the 20 started over %v, want all at once", spread)
		}
		st := status(t, cs[0], "watched:a")
		sh := st.Counters.Shadow
		if !st.Limit.Shadow || st.Counters.Queued != 0 || st.Counters.Rejected != 0 {
			t.Errorf("Limit.Shadow %v, queued %d, rejected %d; want true, 0, 0", st.Limit.Shadow, st.Counters.Queued, st.Counters.Rejected)
		}
		if sh.Allowed != 5 || sh.Queued != 15 || sh.Refused != 0 {
			t.Errorf("shadow counters %+v, want 5 allowed, 15 queued, 0 refused", sh)
		}
		if sh.MaxWait <= 0 || sh.MaxWait > time.Second || sh.Wait < sh.MaxWait || sh.Wait > 15*time.Second {
			t.Errorf("would-be waits: max %v, total %v; want 0 < max <= 1s <= ... total <= 15s", sh.MaxWait, sh.Wait)
		}

		shadowBurst(t, cs, "never", 20)
		if sh := status(t, cs[1], "never").Counters.Shadow; sh.Allowed != 5 || sh.Queued != 0 || sh.Refused != 15 {
			t.Errorf("never queues: shadow counters %+v, want 5 allowed, 15 refused", sh)
		}

		if err := cs[0].SetLimit(context.Background(), "watched:a", Limit{Max: 5, Window: time.Second}); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			eventually(t, 5*time.Second, "every node enforces the limit", func() bool { return !c.node.Params("watched:a").Limit.Shadow })
		}
		if d, err := cs[1].Check(context.Background(), "watched:a"); err != nil || d.Allowed {
			t.Errorf("Check after Shadow off: %+v, %v; want not allowed (the window holds the 20)", d, err)
		}
		_, err := cs[1].Request(context.Background(), "watched:a", func(context.Context) (any, error) { return nil, nil },
			WithTimeout(100*time.Millisecond))
		if !errors.Is(err, ErrWouldExceedDeadline) {
			t.Errorf("a request after Shadow off with 100ms to wait: %v, want ErrWouldExceedDeadline", err)
		}
		if st := status(t, cs[0], "watched:a"); st.Limit.Shadow || st.Counters.Shadow != sh {
			t.Errorf("after Shadow off: Limit.Shadow %v, shadow counters %+v; want false, unchanged %+v", st.Limit.Shadow, st.Counters.Shadow, sh)
		}
	})
}

// TestShadowJobsRunAtOnce: durable jobs on a shadow limit of 1 a minute all run at once, as if
// unlimited (enforced, one a minute would run).
func TestShadowJobsRunAtOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Limits: map[string]Limit{"jobs": {Max: 1, Window: time.Minute, Shadow: true}}})
		c.Handle("echo", func(_ context.Context, p []byte) ([]byte, error) { return p, nil })
		ids, err := c.EnqueueMany(context.Background(), "jobs", "echo", [][]byte{{1}, {2}, {3}, {4}, {5}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, id := range ids {
			if _, err := c.Wait(ctx, id); err != nil {
				t.Fatalf("Wait(%s): %v", id, err)
			}
		}
	})
}

// TestShadowPauseHolds: a pause binds a shadow key as any key: a request waits in line and
// times out; resumed, the key lets requests run at once again.
func TestShadowPauseHolds(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 5, Window: time.Second, Shadow: true}})
		ctx := context.Background()
		if err := c.Pause(ctx, "held"); err != nil {
			t.Fatal(err)
		}
		_, err := c.Request(ctx, "held", func(context.Context) (any, error) { return nil, nil }, WithTimeout(100*time.Millisecond))
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("a request on a paused shadow key: %v, want ErrTimeout", err)
		}
		if err := c.Resume(ctx, "held"); err != nil {
			t.Fatal(err)
		}
		shadowBurst(t, []*Client{c}, "held", 10)
		if sh := status(t, c, "held").Counters.Shadow; sh.Allowed != 5 || sh.Queued != 5 {
			t.Errorf("resumed: shadow counters %+v, want 5 allowed, 5 queued", sh)
		}
	})
}
