package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
)

// TestLimitJSONConcurrency: a concurrency cap goes through PUT and GET of the limit, alone (no
// max, no window) and beside a rate; the status shows the slots held as in_flight, and for a
// cap alone used and remaining are the slots held and free.
func TestLimitJSONConcurrency(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, c := server(t, backend, rateltd.Config{}, httpapi.Options{})
		if a := call(t, ts, "PUT", "/v1/keys/cap/limit", "", `{"concurrency":2}`); a.code != 200 {
			t.Fatalf("PUT a cap alone: %d %s", a.code, a.raw)
		}
		if l, _ := c.LimitOf("cap"); l.Concurrency != 2 || l.Max != 0 || l.Window != 0 {
			t.Fatalf("the library holds %+v, want a cap of 2 alone", l)
		}
		var got httpapi.LimitJSON
		a := call(t, ts, "GET", "/v1/keys/cap/limit", "", "")
		if err := json.Unmarshal([]byte(a.raw), &got); err != nil || got.Concurrency != 2 || got.Window != "" {
			t.Fatalf("GET limit: %d %s", a.code, a.raw)
		}
		if _, err := got.Limit(); err != nil {
			t.Fatalf("the rendered cap %s does not parse back: %v", a.raw, err)
		}
		if a := call(t, ts, "PUT", "/v1/keys/both/limit", "", `{"max":10,"window":"1m","concurrency":3}`); a.code != 200 {
			t.Fatalf("PUT a rate and a cap: %d %s", a.code, a.raw)
		}
		if l, _ := c.LimitOf("both"); l.Concurrency != 3 || l.Max != 10 || l.Window != time.Minute {
			t.Fatalf("the library holds %+v, want 10/1m capped at 3", l)
		}

		hold(t, c, "cap")
		var st httpapi.StatusJSON
		a = call(t, ts, "GET", "/v1/keys/cap", "", "")
		if err := json.Unmarshal([]byte(a.raw), &st); err != nil || st.InFlight != 1 || st.Used != 1 ||
			st.Remaining != 1 || len(st.Rates) != 0 || st.Limit.Concurrency != 2 {
			t.Fatalf("status of the cap with one running: %d %s", a.code, a.raw)
		}

		for _, tc := range []struct{ body, field string }{
			{`{"concurrency":-1}`, "Concurrency"},
			{`{"concurrency":"2"}`, "concurrency"},
			{`{"max":10,"concurrency":2}`, "Window"},
			{`{}`, "Max"},
		} {
			if a := call(t, ts, "PUT", "/v1/keys/cap/limit", "", tc.body); a.code != 400 || !strings.Contains(a.raw, tc.field) {
				t.Errorf("PUT %s: %d %s; want 400 naming %s", tc.body, a.code, a.raw, tc.field)
			}
		}
	})
}

// hold starts a request of key that runs until the test ends, and returns once it runs.
func hold(t *testing.T, c *rateltd.Client, key string) {
	t.Helper()
	running, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Request(context.Background(), key, func(context.Context) (any, error) {
			close(running)
			<-release
			return nil, nil
		})
	}()
	t.Cleanup(func() { close(release); <-done })
	select {
	case <-running:
	case <-time.After(5 * time.Second):
		t.Fatalf("a request of %s did not start within 5s", key)
	}
}
