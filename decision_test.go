package rateltd

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWithDecision: a request granted at once reports its admission's Decision before fn
// runs; one refused at once reports it with the wait; one that waited in line reports none.
func TestWithDecision(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		const window = time.Second
		c := h.client(Config{Default: Limit{Max: 1, Window: window}})
		ctx := context.Background()
		var got []Decision
		report := WithDecision(func(d Decision) { got = append(got, d) })
		if _, err := c.Request(ctx, "k", func(context.Context) (any, error) {
			if len(got) != 1 || !got[0].Allowed || got[0].Remaining != 0 || got[0].ResetAfter <= 0 || got[0].ResetAfter > window {
				t.Errorf("in fn of a request granted at once: %+v; want one Decision, Allowed, 0 remaining, reset within %v", got, window)
			}
			return nil, nil
		}, report); err != nil {
			t.Fatal(err)
		}
		got = nil
		if _, err := c.Request(ctx, "k", noop, WithTimeout(5*time.Second), report); err != nil || len(got) != 0 {
			t.Fatalf("a request that waited in line: %v, reported %+v; want served, nothing reported", err, got)
		}
		if _, err := c.Request(ctx, "k", noop, WithTimeout(time.Microsecond), report); !errors.Is(err, ErrWouldExceedDeadline) ||
			len(got) != 1 || got[0].Allowed || got[0].RetryAfter <= 0 || got[0].RetryAfter > window {
			t.Fatalf("a request refused at once: %v, reported %+v; want ErrWouldExceedDeadline and a wait within %v", err, got, window)
		}
	})
}
