package rateltd

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
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

// fakeUpstream is an API that allows max requests in any window of w (counted as they
// arrive), answers 429 past that, and states its limit, what it has left and when its window
// is whole again in OpenAI's headers.
type fakeUpstream struct {
	mu     sync.Mutex
	max    int
	w      time.Duration
	served []time.Time
}

func (u *fakeUpstream) ServeHTTP(rw http.ResponseWriter, _ *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	live := u.served[:0]
	for _, at := range u.served {
		if now.Sub(at) < u.w {
			live = append(live, at)
		}
	}
	u.served = live
	code := http.StatusOK
	if len(u.served) < u.max {
		u.served = append(u.served, now)
	} else {
		code = http.StatusTooManyRequests
	}
	reset := time.Duration(0)
	if n := len(u.served); n > 0 {
		reset = u.served[n-1].Add(u.w).Sub(now)
	}
	h := rw.Header()
	h.Set("x-ratelimit-limit-requests", strconv.Itoa(u.max))
	h.Set("x-ratelimit-remaining-requests", strconv.Itoa(u.max-len(u.served)))
	h.Set("x-ratelimit-reset-requests", reset.String())
	rw.WriteHeader(code)
}

// TestAdaptiveFollowsUpstream: an upstream whose real budget is half the configured limit, and
// which says so in its headers: three Clients drain a backlog of 60 through an adaptive key,
// each call's answer given to Observe; after the first responses (the first burst, sent at the
// configured limit), no 429.
func TestAdaptiveFollowsUpstream(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		const w = 400 * time.Millisecond
		up := &fakeUpstream{max: 10, w: w}
		srv := httptest.NewServer(up)
		defer srv.Close()
		// The key's window is the API's and a quarter: the API counts a call when it arrives,
		// rateltd when it grants it, and a loaded machine stretches the way between by tens of
		// milliseconds now and then (see README, "Limits as APIs state them", on slack).
		cs := h.clients(3, Config{Default: Limit{Max: 20, Window: w + w/4, Adaptive: true, QueueTimeout: time.Minute}})
		var mu sync.Mutex
		var first time.Time
		var late []time.Duration // 429s after the first window, by their time from the first answer
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := cs[i%3]
				_, err := c.Request(context.Background(), "api", func(ctx context.Context) (any, error) {
					resp, err := http.Get(srv.URL)
					if err != nil {
						return nil, err
					}
					resp.Body.Close()
					mu.Lock()
					now := time.Now()
					if first.IsZero() {
						first = now
					}
					if resp.StatusCode == http.StatusTooManyRequests && now.Sub(first) > w {
						late = append(late, now.Sub(first))
					}
					mu.Unlock()
					return nil, c.Observe(ctx, "api", resp)
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if len(late) > 0 {
			t.Fatalf("429s after the first window: %v", late)
		}
		if st := status(t, cs[0], "api"); st.Effective.Max > 10 {
			t.Fatalf("in force at the end: %d, the upstream allows 10", st.Effective.Max)
		}
	})
}
