package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// TestAdmissionDecisionIsCheck: the Decision an admission reports when it grants or refuses at
// once is what Check answers just after it, on every backend and algorithm: the same
// Remaining, and times that differ only by the moments between the two.
func TestAdmissionDecisionIsCheck(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		near := func(a, b time.Duration) bool { return a >= b && a-b < time.Second }
		same := func(what string, d, c queue.Decision) {
			t.Helper()
			if d.Remaining != c.Remaining || !near(d.ResetAfter, c.ResetAfter) || !near(d.RetryAfter, c.RetryAfter) {
				t.Fatalf("%s: admission's %+v, Check's %+v", what, d, c)
			}
		}
		for _, alg := range []config.Algorithm{config.SlidingWindow, config.FixedWindow, config.TokenBucket} {
			key := "dec" + string(rune('a'+alg))
			p := params(config.Limit{Algorithm: alg, Max: 3, Burst: 3, Window: time.Hour})
			for i := range 4 {
				tk, raw := ticket(t, be, key, nodeA, config.PriorityNormal)
				want := queue.Granted
				if i == 3 {
					// The next start is 20 minutes away or more, and the fixed window's at its
					// hour's end: the ticket may wait a minute at most, and never up to that end.
					want = queue.WouldExceed
					hour := time.Hour.Microseconds()
					end := (tk.Enqueued/hour + 1) * hour
					tk.Deadline = tk.Enqueued + min(time.Minute.Microseconds(), (end-tk.Enqueued)/2)
					var err error
					if raw, err = tk.Encode(); err != nil {
						t.Fatal(err)
					}
				}
				d, ok := admit(t, be, p, tk, raw, want).Decision(p.Limit)
				c, err := be.Check(ctx, key, p, 1)
				if err != nil {
					t.Fatal(err)
				}
				if !ok || d.Allowed != (want == queue.Granted) {
					t.Fatalf("%v admission %d: %+v, %v", alg, i, d, ok)
				}
				if d.Allowed {
					// Check answers for the next request, the admission for its own.
					c.Allowed, c.RetryAfter = true, 0
				}
				same(alg.String()+" admission "+string(rune('0'+i)), d, c)
			}
		}
		// Paused with no end: refused, and no start to name.
		p := params(config.Limit{Max: 3, Window: time.Hour, MaxQueue: -1})
		if err := be.PauseKey(ctx, "decp", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		tk, raw := ticket(t, be, "decp", nodeA, config.PriorityNormal)
		d, ok := admit(t, be, p, tk, raw, queue.Full).Decision(p.Limit)
		c, err := be.Check(ctx, "decp", p, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || d.Allowed || d.RetryAfter != -1 {
			t.Fatalf("paused: %+v, %v; want refused, RetryAfter -1", d, ok)
		}
		same("paused", d, c)
	})
}
