package rateltd

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestUpstreamBudgets: the budgets of OpenAI's, Anthropic's and the IETF's headers, and
// Retry-After; unreadable ones give none.
func TestUpstreamBudgets(t *testing.T) {
	future := time.Now().Add(30 * time.Second).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name  string
		h     map[string]string
		want  []Budget
		retry time.Duration
	}{
		{"openai", map[string]string{"x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s",
			"x-ratelimit-remaining-tokens": "1500", "x-ratelimit-reset-tokens": "6m0s"},
			[]Budget{{Remaining: 59, Reset: time.Second}, {Units: true, Remaining: 1500, Reset: 6 * time.Minute}}, 0},
		{"anthropic", map[string]string{"anthropic-ratelimit-tokens-remaining": "900", "anthropic-ratelimit-tokens-reset": future},
			[]Budget{{Units: true, Remaining: 900, Reset: 30 * time.Second}}, 0},
		{"ietf draft", map[string]string{"RateLimit-Remaining": "4", "RateLimit-Reset": "12"},
			[]Budget{{Remaining: 4, Reset: 12 * time.Second}}, 0},
		{"ietf field", map[string]string{"RateLimit": `"default";r=7;t=3`}, []Budget{{Remaining: 7, Reset: 3 * time.Second}}, 0},
		{"retry after", map[string]string{"Retry-After": "5"}, nil, 5 * time.Second},
		{"unreadable", map[string]string{"x-ratelimit-remaining-requests": "many", "x-ratelimit-reset-requests": "1s",
			"x-ratelimit-remaining-tokens": "5", "x-ratelimit-reset-tokens": "soon"}, nil, 0},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		got, retry := UpstreamBudgets(h)
		if len(got) != len(tc.want) || retry != tc.retry {
			t.Fatalf("%s: %+v, retry %v; want %+v, %v", tc.name, got, retry, tc.want, tc.retry)
		}
		for i := range got {
			w := tc.want[i]
			if got[i].Units != w.Units || got[i].Remaining != w.Remaining || got[i].Reset < w.Reset-2*time.Second || got[i].Reset > w.Reset {
				t.Fatalf("%s: budget %d: %+v, want %+v", tc.name, i, got[i], w)
			}
		}
	}
}

// TestObserveHoldsBack: on every algorithm, an upstream that says it has 3 requests and 20
// tokens left holds a key of 10 requests and 100 tokens a second to that; one that says it has
// more changes nothing (a key is never raised above its limit); on a sliding log the hold
// lapses with the upstream's reset. Status counts what was held back.
func TestObserveHoldsBack(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		for _, alg := range []Algorithm{SlidingWindow, FixedWindow, TokenBucket} {
			t.Run(alg.String(), func(t *testing.T) {
				key := "up-" + alg.String()
				sub := *h
				sub.t = t
				window := time.Hour // a fixed window must not end, GCRA drain, during the test
				if alg == SlidingWindow {
					window = time.Second
				}
				c := sub.client(Config{Default: Limit{Algorithm: alg, Max: 10, Window: window,
					Also: []Rate{{Max: 100, Window: window, Units: true}}}})
				ctx := context.Background()
				rates := func() (int64, int64) {
					st := status(t, c, key)
					return st.Rates[0].Remaining, st.Rates[1].Remaining
				}
				hdr := func(req, tok string) http.Header {
					h := http.Header{}
					h.Set("x-ratelimit-remaining-requests", req)
					h.Set("x-ratelimit-reset-requests", "300ms")
					h.Set("x-ratelimit-remaining-tokens", tok)
					h.Set("x-ratelimit-reset-tokens", "300ms")
					return h
				}
				if err := c.ObserveHeader(ctx, key, hdr("3", "20")); err != nil {
					t.Fatal(err)
				}
				if r, u := rates(); r != 3 || u != 20 {
					t.Fatalf("after the upstream said 3 and 20: %d requests, %d tokens left", r, u)
				}
				if err := c.ObserveHeader(ctx, key, hdr("8", "90")); err != nil {
					t.Fatal(err)
				}
				if r, u := rates(); r != 3 || u != 20 {
					t.Fatalf("after the upstream said 8 and 90: %d requests, %d tokens left; a key is never raised", r, u)
				}
				if st := status(t, c, key); st.Counters.HeldBack != 7+80 {
					t.Fatalf("held back %d, want 87", st.Counters.HeldBack)
				}
				if alg == SlidingWindow {
					eventually(t, 3*time.Second, "the hold lapsing with the upstream's reset", func() bool {
						r, u := rates()
						return r == 10 && u == 100
					})
				}
			})
		}
	})
}

// TestObserveRetryAfter: a Retry-After among the upstream's headers pauses the key on every
// node for its wait.
func TestObserveRetryAfter(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cs := h.clients(2, Config{Default: Limit{Max: 10, Window: time.Second}})
		hdr := http.Header{}
		hdr.Set("Retry-After", "30")
		if err := cs[0].ObserveHeader(context.Background(), "ra", hdr); err != nil {
			t.Fatal(err)
		}
		st := status(t, cs[1], "ra")
		if wait := time.Until(st.PausedUntil); !st.Paused || wait < 25*time.Second || wait > 31*time.Second {
			t.Fatalf("after Retry-After 30: paused %v until %v", st.Paused, st.PausedUntil)
		}
	})
}
