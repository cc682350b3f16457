package rateltd

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestAdaptiveLimit: on every backend, an adaptive key of 20 per 300ms is halved by an
// upstream's 429 on every node (one cut a window however many refusals), brought down to the
// 4 an upstream states, and grows back by a tenth of its limit per window of successes;
// Status shows the limit in force beside the configured one. A key that is not adaptive is
// left as it is.
func TestAdaptiveLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		const window = 300 * time.Millisecond
		cs := h.clients(2, Config{Limits: map[string]Limit{
			"ad":    {Max: 20, Window: window, Adaptive: true},
			"fixed": {Max: 20, Window: window},
		}})
		ctx := context.Background()
		refused := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{}}
		effective := func(c *Client, key string) int {
			st := status(t, c, key)
			if st.Limit.Max != 20 {
				t.Fatalf("%s: configured limit %d, want 20", key, st.Limit.Max)
			}
			return st.Effective.Max
		}
		for range 3 {
			if err := cs[0].Observe(ctx, "ad", refused); err != nil {
				t.Fatal(err)
			}
			if err := cs[0].Observe(ctx, "fixed", refused); err != nil {
				t.Fatal(err)
			}
		}
		if e := effective(cs[0], "ad"); e != 10 {
			t.Fatalf("after three refusals within a window: %d in force, want 10", e)
		}
		eventually(t, 5*time.Second, "the other node holding the key to 10", func() bool { return effective(cs[1], "ad") == 10 })
		if e := effective(cs[1], "fixed"); e != 20 {
			t.Fatalf("a key that is not adaptive: %d in force, want 20", e)
		}
		stated := http.Header{}
		stated.Set("x-ratelimit-limit-requests", "4")
		stated.Set("x-ratelimit-remaining-requests", "4")
		stated.Set("x-ratelimit-reset-requests", "1ms")
		if err := cs[1].ObserveHeader(ctx, "ad", stated); err != nil {
			t.Fatal(err)
		}
		if e := effective(cs[1], "ad"); e != 4 {
			t.Fatalf("after the upstream stated 4: %d in force, want 4", e)
		}
		eventually(t, 5*time.Second, "the other node holding the key to 4", func() bool { return effective(cs[0], "ad") == 4 })
		eventually(t, 10*time.Second, "the limit growing back by a tenth a window of successes", func() bool {
			if _, err := cs[0].Request(ctx, "ad", noop); err != nil {
				t.Fatal(err)
			}
			return effective(cs[0], "ad") >= 8
		})
	})
}
