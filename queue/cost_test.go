package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// TestUnitsLogKeepsItsSum: on every algorithm, a rate that counts units reads what its grants
// cost through grants, refunds, settles (lower and higher) and the window's passing: the
// sliding log's running sum stays the sum of its live entries.
func TestUnitsLogKeepsItsSum(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		for _, alg := range []config.Algorithm{config.SlidingWindow, config.FixedWindow, config.TokenBucket} {
			key := "units-" + alg.String()
			// A fixed window must not end during the test, GCRA drain too fast to read it exactly:
			// only the sliding log's window passes here.
			window := time.Hour
			if alg == config.SlidingWindow {
				window = 300 * time.Millisecond
			}
			p := params(config.Limit{Algorithm: alg, Max: 100, Window: window, Units: true})
			used := func(want int64, when string) {
				t.Helper()
				st, err := be.State(ctx, key, p)
				if err != nil {
					t.Fatal(err)
				}
				if len(st.Rates) != 1 || st.Rates[0].Used != want {
					t.Fatalf("%v, %s: rates %+v, want %d used", alg, when, st.Rates, want)
				}
			}
			costly := func(cost int64) (*queue.Ticket, queue.AdmitReply) {
				tk, _ := ticket(t, be, key, nodeA, config.PriorityNormal)
				tk.Cost = cost
				raw, err := tk.Encode()
				if err != nil {
					t.Fatal(err)
				}
				return tk, admit(t, be, p, tk, raw, queue.Granted)
			}
			a, ra := costly(30)
			b, rb := costly(20)
			used(50, "two grants")
			if err := be.Refund(ctx, key, p, a.ID, ra.Now, nil, 30); err != nil {
				t.Fatal(err)
			}
			used(20, "the first refunded")
			if err := be.Settle(ctx, key, p, b.ID, rb.Now, 20, 5); err != nil {
				t.Fatal(err)
			}
			used(5, "the second settled lower")
			if err := be.Settle(ctx, key, p, b.ID, rb.Now, 5, 45); err != nil {
				t.Fatal(err)
			}
			used(45, "then higher")
			if alg == config.SlidingWindow {
				time.Sleep(700 * time.Millisecond)
				costly(7)
				used(7, "after the window")
			}
		}
	})
}
