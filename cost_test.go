package rateltd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rateltd/rateltd/processor"
)

// G13 — costs and several rates: every test runs on every backend (memory, redis, cluster).

// costGrant is one grant of a run of requests: when Redis (or the in-process clock) granted it,
// and its cost.
type costGrant struct {
	at   int64 // µs of server time
	cost int64
}

// acquireCosts has cs share n requests of key with random costs from 1 to maxCost, each
// acquired on the node's own (so that the grant's server time is kept) and run at once; it
// returns the grants sorted by time.
func acquireCosts(t *testing.T, cs []*Client, key string, n int, maxCost int64, seed uint64) []costGrant {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	costs := make([]int64, n)
	for i := range costs {
		costs[i] = 1 + rng.Int64N(maxCost)
	}
	var mu sync.Mutex
	var grants []costGrant
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cs[i%len(cs)]
			g, err := c.node.Acquire(context.Background(), processor.Request{Key: key, Cost: costs[i], Timeout: time.Minute})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			grants = append(grants, costGrant{g.At, g.Cost})
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Acquire: %v", err)
	}
	slices.SortFunc(grants, func(a, b costGrant) int { return int(a.at - b.at) })
	for i, g := range grants {
		if g.cost < 1 {
			t.Fatalf("grant %d has cost %d", i, g.cost)
		}
	}
	return grants
}

// sumWithin is what the grants from i on, within w of grant i, count: their number and cost.
func sumWithin(grants []costGrant, i int, w time.Duration) (n int, units int64) {
	for j := i; j < len(grants) && grants[j].at-grants[i].at < w.Microseconds(); j++ {
		n++
		units += grants[j].cost
	}
	return n, units
}

// TestG13CostNeverOverLimit: three nodes share a key of 10 requests and 60 cost units per
// 400ms and acquire 40 requests of random cost 1–20 at once. For every algorithm, the grants
// (Redis's times) keep both rates: no window of the sliding log, no aligned window of the fixed
// one, holds more than 10 requests or 60 units; GCRA's grants conform to both buckets. And
// the line moves: the run takes at most twice the time the unit rate needs for the total cost.
func TestG13CostNeverOverLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		const window = 400 * time.Millisecond
		for _, alg := range []Algorithm{SlidingWindow, FixedWindow, TokenBucket} {
			t.Run(alg.String(), func(t *testing.T) {
				l := Limit{Algorithm: alg, Max: 10, Window: window,
					Also: []Rate{{Max: 60, Window: window, Units: true}}}
				sub := *h // nodes of this algorithm only: closed when the subtest ends
				sub.t = t
				cs := sub.clients(3, Config{Default: l})
				start := time.Now()
				grants := acquireCosts(t, cs, "llm-"+alg.String(), 40, 20, uint64(alg)+7)
				elapsed := time.Since(start)
				var total int64
				for _, g := range grants {
					total += g.cost
				}
				switch alg {
				case SlidingWindow:
					for i := range grants {
						if n, u := sumWithin(grants, i, window); n > 10 || u > 60 {
							t.Fatalf("%d requests, %d units within %v from grant %d", n, u, window, i)
						}
					}
				case FixedWindow:
					w := window.Microseconds()
					for i := range grants {
						n, u := 0, int64(0)
						for _, g := range grants {
							if g.at/w == grants[i].at/w {
								n, u = n+1, u+g.cost
							}
						}
						if n > 10 || u > 60 {
							t.Fatalf("%d requests, %d units in the window of grant %d", n, u, i)
						}
					}
				case TokenBucket:
					// GCRA with burst b and emission interval e admits from grant i to grant j
					// at most b + (t_j - t_i)/e.
					for _, r := range []struct {
						max   int64
						units bool
					}{{10, false}, {60, true}} {
						e := (window.Microseconds() + r.max - 1) / r.max
						for i := range grants {
							var sum int64
							for j := i; j < len(grants); j++ {
								if r.units {
									sum += grants[j].cost
								} else {
									sum++
								}
								if allowed := r.max + (grants[j].at-grants[i].at)/e; sum > allowed {
									t.Fatalf("rate %d: %d from grant %d to %d, GCRA allows %d", r.max, sum, i, j, allowed)
								}
							}
						}
					}
				}
				ideal := time.Duration(total) * window / 60
				if elapsed > 2*ideal+2*time.Second {
					t.Fatalf("%d units took %v; the rate allows them in %v", total, elapsed, ideal)
				}
			})
		}
	})
}

// TestG13AllOrNothing: a key of 5 requests and 10 units per hour. A request of cost 8 starts;
// one of cost 5 fits the request rate but not the units left, and fails at once (its timeout
// is shorter than the wait) — charged to neither rate; one of cost 2 fits both and is charged
// to both.
func TestG13AllOrNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		for _, alg := range []Algorithm{SlidingWindow, FixedWindow, TokenBucket} {
			t.Run(alg.String(), func(t *testing.T) {
				key := "k-" + alg.String()
				sub := *h
				sub.t = t
				c := sub.client(Config{Default: Limit{Algorithm: alg, Max: 5, Window: time.Hour,
					Also: []Rate{{Max: 10, Window: time.Hour, Units: true}}}})
				ctx := context.Background()
				ok := func(context.Context) (any, error) { return nil, nil }
				if _, err := c.Request(ctx, key, ok, WithCost(8)); err != nil {
					t.Fatal(err)
				}
				rates := func() (req, units int64) {
					st := status(t, c, key)
					if len(st.Rates) != 2 {
						t.Fatalf("Status.Rates: %+v", st.Rates)
					}
					return st.Rates[0].Used, st.Rates[1].Used
				}
				if r, u := rates(); r != 1 || u != 8 {
					t.Fatalf("after cost 8: %d requests, %d units used", r, u)
				}
				ran := false
				_, err := c.Request(ctx, key, func(context.Context) (any, error) { ran = true; return nil, nil },
					WithCost(5), WithTimeout(100*time.Millisecond))
				if !errors.Is(err, ErrWouldExceedDeadline) || ran {
					t.Fatalf("cost 5 with 2 units left: %v (ran %v), want ErrWouldExceedDeadline", err, ran)
				}
				if r, u := rates(); r != 1 || u != 8 {
					t.Fatalf("after a refused cost 5: %d requests, %d units used; want 1, 8", r, u)
				}
				if d, err := c.Check(ctx, key, WithCost(3)); err != nil || d.Allowed {
					t.Fatalf("Check cost 3: %+v, %v; want not allowed", d, err)
				}
				if d, err := c.Check(ctx, key, WithCost(2)); err != nil || !d.Allowed || d.Remaining != 2 {
					t.Fatalf("Check cost 2: %+v, %v; want allowed, 2 remaining", d, err)
				}
				if _, err := c.Request(ctx, key, ok, WithCost(2)); err != nil {
					t.Fatal(err)
				}
				if r, u := rates(); r != 2 || u != 10 {
					t.Fatalf("after cost 2: %d requests, %d units used; want 2, 10", r, u)
				}
			})
		}
	})
}

// TestG13Settle: on a key of 100 units per 10s, a request admitted at cost 80 settles 30: the
// 50 come back at once (a request of cost 70 starts), and Status counts 100. A request of cost
// 1 settling 40 goes over: later requests wait. Settle works once, and only in fn.
func TestG13Settle(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		for _, alg := range []Algorithm{SlidingWindow, FixedWindow, TokenBucket} {
			t.Run(alg.String(), func(t *testing.T) {
				key := "s-" + alg.String()
				sub := *h
				sub.t = t
				c := sub.client(Config{Default: Limit{Algorithm: alg, Max: 100, Window: 10 * time.Second, Units: true}})
				ctx := context.Background()
				if err := Settle(ctx, 3); !errors.Is(err, ErrNotSettleable) {
					t.Fatalf("Settle outside fn: %v", err)
				}
				_, err := c.Request(ctx, key, func(ctx context.Context) (any, error) {
					if err := Settle(ctx, 30); err != nil {
						return nil, err
					}
					if err := Settle(ctx, 20); !errors.Is(err, ErrNotSettleable) {
						return nil, fmt.Errorf("second Settle: %v", err)
					}
					return nil, nil
				}, WithCost(80))
				if err != nil {
					t.Fatal(err)
				}
				if st := status(t, c, key); st.Used != 30 || st.Remaining != 70 || st.Counters.Units.Settled != 1 ||
					st.Counters.Units.Returned != 50 {
					t.Fatalf("after settling 80 as 30: used %d, remaining %d, %+v", st.Used, st.Remaining, st.Counters.Units)
				}
				if d, err := c.Check(ctx, key, WithCost(70)); err != nil || !d.Allowed {
					t.Fatalf("Check cost 70 after the settle: %+v, %v", d, err)
				}
				if _, err := c.Request(ctx, key, func(ctx context.Context) (any, error) { return nil, Settle(ctx, 40) },
					WithCost(1)); err != nil {
					t.Fatal(err)
				}
				st := status(t, c, key)
				if st.Used != 70 || st.Counters.Units.Over != 39 {
					t.Fatalf("after settling 1 as 40: used %d, %+v; want 70 used, 39 over", st.Used, st.Counters.Units)
				}
				if d, err := c.Check(ctx, key, WithCost(31)); err != nil || d.Allowed || d.RetryAfter <= 0 {
					t.Fatalf("Check cost 31 with 30 left: %+v, %v; want a wait", d, err)
				}
			})
		}
	})
}

// TestG13CostTooHigh: a cost above what a units rate could ever admit (its Max; its Burst for
// GCRA) fails at once with ErrCostTooHigh, fn never runs; a rate that counts requests bounds no
// cost; a cost below 1 is refused.
func TestG13CostTooHigh(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Limits: map[string]Limit{
			"units": {Max: 100, Window: time.Second, Also: []Rate{{Max: 10, Window: time.Second, Units: true}}},
			"gcra":  {Algorithm: TokenBucket, Max: 100, Window: time.Second, Burst: 5, Units: true},
			"reqs":  {Max: 10, Window: time.Second},
		}})
		ctx := context.Background()
		ran := 0
		fn := func(context.Context) (any, error) { ran++; return nil, nil }
		for _, tc := range []struct {
			key  string
			cost int
			want error
		}{{"units", 11, ErrCostTooHigh}, {"units", 10, nil}, {"gcra", 6, ErrCostTooHigh}, {"gcra", 5, nil},
			{"reqs", 1000, nil}, {"reqs", 0, ErrInvalidConfig}, {"reqs", -2, ErrInvalidConfig}} {
			before := ran
			_, err := c.Request(ctx, tc.key, fn, WithCost(tc.cost))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("%s cost %d: %v, want %v", tc.key, tc.cost, err, tc.want)
			}
			if tc.want != nil && ran != before {
				t.Fatalf("%s cost %d: fn ran", tc.key, tc.cost)
			}
			if _, err := c.Check(ctx, tc.key, WithCost(tc.cost)); tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Check %s cost %d: %v, want %v", tc.key, tc.cost, err, tc.want)
			}
		}
	})
}

// TestG13LineStaysLine: on a key of 10 units per 1.5s with 5 used, A (cost 8) waits; B (cost
// 1), which would fit, queues behind it and starts after it (G2, G3). The fail-fast estimate
// counts the costs ahead: on a fixed window of 10 units a second, used up, C (cost 10) behind A
// (cost 10) cannot start before two windows, so with a timeout of 1s it fails at once (when
// C's admit comes in the window used up: see below).
func TestG13LineStaysLine(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Limits: map[string]Limit{
			"line":  {Max: 10, Window: 1500 * time.Millisecond, Units: true},
			"fixed": {Algorithm: FixedWindow, Max: 10, Window: time.Second, Units: true}, // a group: fixed:1, fixed:2, ...
		}})
		ctx := context.Background()
		ok := func(context.Context) (any, error) { return nil, nil }
		first, err := c.node.Acquire(ctx, processor.Request{Key: "line", Cost: 5})
		if err != nil {
			t.Fatal(err)
		}
		acquire := func(cost int64) <-chan processor.Grant {
			ch := make(chan processor.Grant, 1)
			go func() {
				g, err := c.node.Acquire(ctx, processor.Request{Key: "line", Cost: cost})
				if err != nil {
					t.Error(err)
				}
				ch <- g
			}()
			return ch
		}
		a := acquire(8)
		waitQueued(t, c, "line", 1)
		b := acquire(1)
		waitQueued(t, c, "line", 2)
		ga, gb := <-a, <-b
		if ga.At == 0 || gb.At == 0 || gb.At < ga.At || gb.At < first.At+1500_000 {
			t.Fatalf("grants at %d (cost 5), A %d, B %d: B (cost 1) must not start before A (cost 8), nor while 5 units were left",
				first.At, ga.At, gb.At)
		}

		// The refusal holds when C's admit comes in the window the first request used up: A then
		// waits for the next window and C for the one after, more than 1s away. The sequence
		// starts at a window's beginning; should a window's end come within 200ms of C's admit
		// (a slow machine), it runs again on a fresh key of the group.
		window := time.Second.Microseconds()
		for attempt := 1; ; attempt++ {
			key := fmt.Sprintf("fixed:%d", attempt)
			for now := c.node.ServerTime(time.Now()); now%window > window/5; now = c.node.ServerTime(time.Now()) {
				time.Sleep(10 * time.Millisecond)
			}
			used := c.node.ServerTime(time.Now()) / window
			if _, err := c.Request(ctx, key, ok, WithCost(10)); err != nil {
				t.Fatal(err)
			}
			fa := c.RequestAsync(ctx, key, ok, WithCost(10))
			waitQueued(t, c, key, 1)
			at := c.node.ServerTime(time.Now())
			_, err := c.Request(ctx, key, ok, WithCost(10), WithTimeout(time.Second))
			if r := <-fa; r.Err != nil {
				t.Fatal(r.Err)
			}
			if errors.Is(err, ErrWouldExceedDeadline) {
				break
			}
			if (at+200_000)/window == used || attempt == 5 {
				t.Fatalf("cost 10 behind cost 10 with 1s, admitted %dms before the window's end: %v, want ErrWouldExceedDeadline",
					((used+1)*window-at)/1000, err)
			}
			t.Logf("attempt %d: the window ended within 200ms of C's admit; again on a fresh key", attempt)
		}
	})
}

// TestG13JobCost: a durable job enqueued at cost 6 on a key of 10 units an hour is charged 6
// when granted and settles 2 in its handler; a job of cost 11 fails at once with
// ErrCostTooHigh; a job of cost 9 with 8 left waits (its Enqueue is refused at once with a
// short timeout; so is EnqueueMany's).
func TestG13JobCost(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 10, Window: time.Hour, Units: true}})
		charged := make(chan int, 1)
		c.Handle("h", func(ctx context.Context, p []byte) ([]byte, error) {
			st, err := c.Status(ctx, "jobs")
			if err != nil {
				return nil, err
			}
			charged <- st.Used
			return nil, Settle(ctx, 2)
		})
		ctx := context.Background()
		id, err := c.Enqueue(ctx, "jobs", "h", nil, WithCost(6))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
		if u := <-charged; u != 6 {
			t.Fatalf("used while the job ran: %d, want 6", u)
		}
		if st := status(t, c, "jobs"); st.Used != 2 {
			t.Fatalf("used after the job settled 2: %d", st.Used)
		}
		if _, err := c.Enqueue(ctx, "jobs", "h", nil, WithCost(11)); !errors.Is(err, ErrCostTooHigh) {
			t.Fatalf("Enqueue cost 11: %v, want ErrCostTooHigh", err)
		}
		if _, err := c.Enqueue(ctx, "jobs", "h", nil, WithCost(9), WithTimeout(100*time.Millisecond)); !errors.Is(err, ErrWouldExceedDeadline) {
			t.Fatalf("Enqueue cost 9 with 8 left: %v, want ErrWouldExceedDeadline", err)
		}
		if ids, err := c.EnqueueMany(ctx, "jobs", "h", [][]byte{nil, nil}, WithCost(9), WithTimeout(100*time.Millisecond)); len(ids) != 0 || !errors.Is(err, ErrWouldExceedDeadline) {
			t.Fatalf("EnqueueMany cost 9 with 8 left: %v, %v; want none queued and ErrWouldExceedDeadline", ids, err)
		}
	})
}

// TestG13LoweredLimitEvicts: a request of cost 8 waits on a key of 10 units a minute with 5
// used; the limit is lowered at run time to 6 units, which can never admit it: it ends with
// ErrEvicted rather than holding the line for ever, and the request behind it starts (after
// the limit's new window).
func TestG13LoweredLimitEvicts(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 10, Window: time.Minute, Units: true, QueueTimeout: 2 * time.Minute}})
		ctx := context.Background()
		ok := func(context.Context) (any, error) { return nil, nil }
		if _, err := c.Request(ctx, "low", ok, WithCost(5)); err != nil {
			t.Fatal(err)
		}
		big := c.RequestAsync(ctx, "low", ok, WithCost(8))
		waitQueued(t, c, "low", 1)
		small := c.RequestAsync(ctx, "low", ok, WithCost(1))
		waitQueued(t, c, "low", 2)
		if err := c.SetLimit(ctx, "low", Limit{Max: 6, Window: 100 * time.Millisecond, Units: true, QueueTimeout: 2 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		if r := <-big; !errors.Is(r.Err, ErrEvicted) {
			t.Fatalf("cost 8 under a limit of 6: %v, want ErrEvicted", r.Err)
		}
		if r := <-small; r.Err != nil {
			t.Fatalf("cost 1 behind it: %v", r.Err)
		}
	})
}

// TestG13DecisionOfTightestRate: the Decision of an admission and of Check is the tightest
// rate's: its remaining and its Max (Limit), whichever rate that is.
func TestG13DecisionOfTightestRate(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Limits: map[string]Limit{
			"two": {Max: 100, Window: time.Hour, Also: []Rate{{Max: 50, Window: time.Hour, Units: true}}},
			"cap": {Concurrency: 4},
		}})
		ctx := context.Background()
		var got Decision
		if _, err := c.Request(ctx, "two", noop, WithCost(40), WithDecision(func(d Decision) { got = d })); err != nil {
			t.Fatal(err)
		}
		// 99 of 100 requests left against 10 of 50 units: the units rate is the tighter.
		if got.Limit != 50 || got.Remaining != 10 {
			t.Fatalf("admission's decision %+v, want 10 remaining of 50", got)
		}
		if d, err := c.Check(ctx, "two"); err != nil || d.Limit != 50 || d.Remaining != 10 {
			t.Fatalf("Check: %+v, %v; want 10 remaining of 50", d, err)
		}
		if d, err := c.Check(ctx, "cap"); err != nil || d.Limit != 4 || d.Remaining != 4 || !d.Allowed {
			t.Fatalf("Check of a cap alone: %+v, %v; want 4 remaining of 4", d, err)
		}
	})
}
