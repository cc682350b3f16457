package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestLLMWithinBothRates runs the example at a small scale (an API minute of 1.8s), in-process
// and with three clients sharing Redis: the fake API never answers 429, every call succeeds and
// settles, a prompt no minute could admit fails at once with ErrCostTooHigh, and the run ends
// within a generous bound of the least time the API's limits allow.
func TestLLMWithinBothRates(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			s := setup{scale: 0.03, calls: 40, callers: 4, seed: 7, settle: true, out: t.Output()}
			s.slack = defaultSlack(scaled(s.scale))
			if backend == "redis" {
				srv := redistest.Server(t)
				s.rdb, s.prefix = srv.Client(t), srv.Prefix(t)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := run(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d clients: %d calls, %d tokens estimated, %d used, %d given back by %d settled; %v against an ideal %v",
				r.clients, r.calls, r.estimated, r.used, r.returned, r.settled, r.elapsed, r.ideal())
			if r.tooMany != 0 || r.failed != 0 || r.calls != s.calls {
				t.Errorf("the API answered 429 %d times; %d calls failed, %d of %d succeeded", r.tooMany, r.failed, r.calls, s.calls)
			}
			if r.returned != int64(r.estimated-r.used) || r.settled == 0 {
				t.Errorf("settling gave back %d tokens in %d calls, want %d (estimated %d, used %d)",
					r.returned, r.settled, r.estimated-r.used, r.estimated, r.used)
			}
			if !errors.Is(r.tooLarge, rateltd.ErrCostTooHigh) || r.tooLargeRan {
				t.Errorf("a prompt over what a minute admits: %v (fn ran: %v), want ErrCostTooHigh at once", r.tooLarge, r.tooLargeRan)
			}
			if bound := 2*r.ideal() + r.window; r.elapsed > bound {
				t.Errorf("took %v, more than %v (twice the ideal %v and a minute of the API's)", r.elapsed, bound, r.ideal())
			}
		})
	}
}
