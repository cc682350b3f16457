package rateltd

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryAfterPausesAndRetries: fn's RetryAfter pauses the key on every node until then
// (Status shows until when) and, within WithMaxRetries, runs the request again from the head
// of its line, before requests that were waiting behind it.
func TestRetryAfterPausesAndRetries(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		// One start per 300ms, so that the order of starts is the order of grants.
		cs := h.clients(2, Config{Default: Limit{Max: 1, Window: 300 * time.Millisecond}})
		ctx := context.Background()
		var mu sync.Mutex
		var order []string
		var calls atomic.Int32
		running, release := make(chan struct{}), make(chan struct{})
		upstream := func(context.Context) (any, error) {
			if calls.Add(1) == 1 {
				close(running)
				<-release
				return nil, RetryAfter(400*time.Millisecond, errors.New("429 from upstream"))
			}
			mu.Lock()
			order = append(order, "retried")
			mu.Unlock()
			return "ok", nil
		}
		first := cs[0].RequestAsync(ctx, "llm", upstream, WithMaxRetries(1), WithTimeout(5*time.Second))
		<-running
		// A request of another node queues while the first one's fn runs...
		second := cs[1].RequestAsync(ctx, "llm", func(context.Context) (any, error) {
			mu.Lock()
			order = append(order, "newcomer")
			mu.Unlock()
			return nil, nil
		}, WithTimeout(5*time.Second))
		waitQueued(t, cs[1], "llm", 1)
		// ...then the upstream says 429: the key pauses everywhere, until a time.
		close(release)
		eventually(t, 5*time.Second, "key paused until a time, on the other node", func() bool {
			st := status(t, cs[1], "llm")
			return st.Paused && !st.PausedUntil.IsZero() && time.Until(st.PausedUntil) > 0
		})
		paused := time.Now()
		if r := <-first; r.Err != nil || r.Value != "ok" {
			t.Fatalf("retried request: %+v", r)
		}
		if waited := time.Since(paused); waited < 250*time.Millisecond {
			t.Fatalf("retried after %v: the pause of 400ms was not kept", waited)
		}
		if r := <-second; r.Err != nil {
			t.Fatal(r.Err)
		}
		if len(order) != 2 || order[0] != "retried" {
			t.Fatalf("order %v: the retried request did not go back to the head of the line", order)
		}
	})
}

// TestRetryAfterWithoutBudget: with no retries allowed (the default), the caller gets the
// RetryAfterError, and the key is paused all the same.
func TestRetryAfterWithoutBudget(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{})
		ctx := context.Background()
		_, err := c.Request(ctx, "llm", func(context.Context) (any, error) {
			return nil, RetryAfter(time.Minute, errors.New("429"))
		})
		var ra *RetryAfterError
		if !errors.As(err, &ra) || ra.After != time.Minute {
			t.Fatalf("err = %v, want a RetryAfterError of 1m", err)
		}
		st := status(t, c, "llm")
		if !st.Paused || time.Until(st.PausedUntil) < 50*time.Second {
			t.Fatalf("paused %v until %v; want about a minute", st.Paused, st.PausedUntil)
		}
		// A retry whose wait exceeds the deadline returns what the upstream said, at once.
		start := time.Now()
		_, err = c.Request(ctx, "other", func(context.Context) (any, error) {
			return nil, RetryAfter(time.Hour, errors.New("429"))
		}, WithMaxRetries(3), WithTimeout(time.Second))
		if !errors.As(err, &ra) || time.Since(start) > 500*time.Millisecond {
			t.Fatalf("hopeless retry: %v after %v", err, time.Since(start))
		}
		// An operator's pause with no end is not shortened by an upstream's wait.
		if err := c.Pause(ctx, "ops"); err != nil {
			t.Fatal(err)
		}
		c.node.PauseFor(ctx, "ops", time.Millisecond)
		if st := status(t, c, "ops"); !st.Paused || !st.PausedUntil.IsZero() {
			t.Fatalf("operator's pause changed: %+v", st)
		}
	})
}

func TestRetryAfterResponse(t *testing.T) {
	mk := func(code int, h string) *http.Response {
		r := &http.Response{StatusCode: code, Status: http.StatusText(code), Header: http.Header{}}
		if h != "" {
			r.Header.Set("Retry-After", h)
		}
		return r
	}
	for _, tc := range []struct {
		resp *http.Response
		want time.Duration // -1: no error
	}{
		{mk(200, "5"), -1},
		{mk(500, "5"), -1},
		{nil, -1},
		{mk(429, "7"), 7 * time.Second},
		{mk(503, ""), time.Second},
		{mk(429, "soon"), time.Second},
		{mk(429, time.Now().Add(10*time.Second).UTC().Format(http.TimeFormat)), 9 * time.Second},
	} {
		err := RetryAfterResponse(tc.resp)
		var ra *RetryAfterError
		switch {
		case tc.want < 0 && err != nil:
			t.Errorf("%v: %v, want nil", tc.resp, err)
		case tc.want >= 0 && (!errors.As(err, &ra) || ra.After < tc.want || ra.After > tc.want+time.Second):
			t.Errorf("%v: %v, want a wait of %v", tc.resp, err, tc.want)
		}
	}
}
