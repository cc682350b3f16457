package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
)

// tokens is a limit of 10 requests and 100 cost units an hour.
var tokens = rateltd.Limit{Max: 10, Window: time.Hour, Also: []rateltd.Rate{{Max: 100, Window: time.Hour, Units: true}}}

// TestAcquireCost: ?cost= counts against the rate that counts units; a grant on such a limit
// comes with a settle token, and settling gives the difference back (the RateLimit headers are
// the tightest rate's: 40 of 100 units before 9 of 10 requests); a cost no rate could ever
// admit is a 413 with ErrCostTooHigh's text; a bad cost, a 400.
func TestAcquireCost(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, c := server(t, backend, rateltd.Config{Limits: map[string]rateltd.Limit{"tok": tokens, "plain": {Max: 5, Window: time.Hour}}},
			httpapi.Options{})
		ctx := context.Background()
		var got httpapi.Acquired
		a := call(t, ts, "POST", "/v1/acquire/tok?cost=60", "", "")
		if err := json.Unmarshal([]byte(a.raw), &got); err != nil || a.code != 200 || got.Cost != 60 || len(got.Settle) != 32 ||
			a.header.Get("RateLimit-Remaining") != "40" || a.header.Get("RateLimit-Limit") != "100" {
			t.Fatalf("acquire cost 60: %d %s %v", a.code, a.raw, a.header)
		}
		if a := call(t, ts, "POST", "/v1/acquire/tok?cost=50", "", ""); a.code != 429 {
			t.Fatalf("acquire cost 50 with 40 units left: %d %s; want 429", a.code, a.raw)
		}
		if a := call(t, ts, "POST", "/v1/settle/plain/"+got.Settle+"?cost=10", "", ""); a.code != 404 {
			t.Fatalf("settle under another key: %d %s; want 404", a.code, a.raw)
		}
		if a := call(t, ts, "POST", "/v1/settle/tok/"+got.Settle+"?cost=10", "", ""); a.code != 200 || a.body["settled"] != true {
			t.Fatalf("settle: %d %s", a.code, a.raw)
		}
		st, err := c.Status(ctx, "tok")
		if err != nil || st.Rates[1].Used != 10 || st.Counters.Units.Settled != 1 || st.Counters.Units.Returned != 50 {
			t.Fatalf("after settling 10 of 60: %+v %v", st, err)
		}
		if a := call(t, ts, "POST", "/v1/settle/tok/"+got.Settle+"?cost=1", "", ""); a.code != 404 {
			t.Fatalf("settle twice: %d %s; want 404", a.code, a.raw)
		}
		if a := call(t, ts, "POST", "/v1/acquire/tok?cost=50", "", ""); a.code != 200 {
			t.Fatalf("acquire cost 50 after the settle gave 50 back: %d %s", a.code, a.raw)
		}

		a = call(t, ts, "POST", "/v1/acquire/tok?cost=101", "", "")
		if a.code != 413 || !strings.Contains(a.raw, rateltd.ErrCostTooHigh.Error()) {
			t.Fatalf("acquire cost 101 of at most 100: %d %s; want 413 with %q", a.code, a.raw, rateltd.ErrCostTooHigh)
		}
		if a := call(t, ts, "POST", "/v1/acquire/plain?cost=1000", "", ""); a.code != 200 || a.body["settle"] != nil {
			t.Fatalf("a cost on a limit that counts requests only: %d %s; want 200 and no settle token", a.code, a.raw)
		}
		for _, path := range []string{"/v1/acquire/tok?cost=0", "/v1/acquire/tok?cost=-3", "/v1/acquire/tok?cost=lots",
			"/v1/acquire/tok?cost=9007199254740993", "/v1/settle/tok/abc", "/v1/settle/tok/abc?cost=-1", "/v1/settle/tok/abc?cost=x"} {
			if a := call(t, ts, "POST", path, "", ""); a.code != 400 || !strings.Contains(a.raw, "cost") {
				t.Errorf("%s: %d %s; want 400 naming cost", path, a.code, a.raw)
			}
		}
	})
}

// TestEnqueueCost: a durable job's ?cost= counts against the units of its key's limit, and a
// cost above what the limit could ever admit is a 413.
func TestEnqueueCost(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, c := server(t, backend, rateltd.Config{Limits: map[string]rateltd.Limit{"tok": tokens}}, httpapi.Options{})
		ran := make(chan struct{}, 1)
		if err := c.Handle("h", func(context.Context, []byte) ([]byte, error) { ran <- struct{}{}; return nil, nil }); err != nil {
			t.Fatal(err)
		}
		if a := call(t, ts, "POST", "/v1/jobs/tok?handler=h&cost=70", "", "x"); a.code != 201 {
			t.Fatalf("enqueue cost 70: %d %s", a.code, a.raw)
		}
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Fatal("the job did not run")
		}
		if st, err := c.Status(context.Background(), "tok"); err != nil || st.Rates[1].Used != 70 {
			t.Fatalf("after a job of cost 70: %+v %v", st.Rates, err)
		}
		if a := call(t, ts, "POST", "/v1/jobs/tok?handler=h&cost=101", "", "x"); a.code != 413 ||
			!strings.Contains(a.raw, rateltd.ErrCostTooHigh.Error()) {
			t.Fatalf("enqueue cost 101: %d %s; want 413", a.code, a.raw)
		}
		if a := call(t, ts, "POST", "/v1/jobs/tok?handler=h&cost=0", "", "x"); a.code != 400 {
			t.Fatalf("enqueue cost 0: %d %s; want 400", a.code, a.raw)
		}
	})
}

// TestSettleTokensBounded: past MaxSettles the oldest grant can no longer be settled, and a
// grant's token lapses after SettleTTL.
func TestSettleTokensBounded(t *testing.T) {
	ts, _ := server(t, "memory", rateltd.Config{Limits: map[string]rateltd.Limit{"tok": tokens}},
		httpapi.Options{MaxSettles: 2, SettleTTL: 300 * time.Millisecond})
	var toks []string
	var granted time.Time
	for range 3 {
		granted = time.Now()
		a := call(t, ts, "POST", "/v1/acquire/tok?cost=5", "", "")
		tok, _ := a.body["settle"].(string)
		toks = append(toks, tok)
	}
	settle := func(tok string) int {
		return call(t, ts, "POST", "/v1/settle/tok/"+url.PathEscape(tok)+"?cost=1", "", "").code
	}
	if got := settle(toks[0]); got != http.StatusNotFound {
		t.Fatalf("the oldest of 3 tokens with MaxSettles 2: %d, want 404", got)
	}
	if got := settle(toks[1]); got != http.StatusOK {
		t.Fatalf("the second token: %d, want 200", got)
	}
	// The last token lapses 300ms after its grant: past that, it settles nothing.
	time.Sleep(time.Until(granted.Add(400 * time.Millisecond)))
	if got := settle(toks[2]); got != http.StatusNotFound {
		t.Fatalf("a token past its SettleTTL: %d, want 404", got)
	}
}
