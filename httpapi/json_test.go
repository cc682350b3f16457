package httpapi_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
)

// TestLimitJSONRates: a limit's units and further rates go through PUT and GET of the limit as
// the library holds them; the status shows each rate with what it counts, and the settled-units
// counters.
func TestLimitJSONRates(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, c := server(t, backend, rateltd.Config{}, httpapi.Options{})
		ctx := context.Background()
		body := `{"algorithm":"sliding","max":1000,"window":"1m","units":true,` +
			`"also":[{"max":5,"window":"1s"},{"max":50000,"window":"24h","units":true}]}`
		if a := call(t, ts, "PUT", "/v1/keys/llm/limit", "", body); a.code != 200 {
			t.Fatalf("PUT limit: %d %s", a.code, a.raw)
		}
		want := rateltd.Limit{Max: 1000, Window: time.Minute, Units: true,
			Also: []rateltd.Rate{{Max: 5, Window: time.Second}, {Max: 50000, Window: 24 * time.Hour, Units: true}}}
		if l, _ := c.LimitOf("llm"); !reflect.DeepEqual(l.Also, want.Also) || !l.Units || l.Max != 1000 {
			t.Fatalf("the library holds %+v, want %+v", l, want)
		}
		var got httpapi.LimitJSON
		a := call(t, ts, "GET", "/v1/keys/llm/limit", "", "")
		if err := json.Unmarshal([]byte(a.raw), &got); err != nil || !got.Units || len(got.Also) != 2 ||
			got.Also[0] != (httpapi.RateJSON{Max: 5, Window: "1s"}) || got.Also[1] != (httpapi.RateJSON{Max: 50000, Window: "24h0m0s", Units: true}) {
			t.Fatalf("GET limit: %d %s", a.code, a.raw)
		}

		if _, err := c.Request(ctx, "llm", func(ctx context.Context) (any, error) { return nil, rateltd.Settle(ctx, 30) },
			rateltd.WithCost(70)); err != nil {
			t.Fatal(err)
		}
		var st httpapi.StatusJSON
		a = call(t, ts, "GET", "/v1/keys/llm", "", "")
		if err := json.Unmarshal([]byte(a.raw), &st); err != nil {
			t.Fatalf("status: %d %s", a.code, a.raw)
		}
		wantRates := []httpapi.RateStatusJSON{
			{Max: 1000, Window: "1m0s", Units: true, Used: 30, Remaining: 970},
			{Max: 5, Window: "1s", Used: 1, Remaining: 4},
			{Max: 50000, Window: "24h0m0s", Units: true, Used: 30, Remaining: 49970},
		}
		if !reflect.DeepEqual(st.Rates, wantRates) || st.Counters["settled"] != 1 || st.Counters["units_returned"] != 40 ||
			st.Counters["units_over"] != 0 {
			t.Fatalf("status rates %+v counters %v; want %+v, settled 1, units_returned 40", st.Rates, st.Counters, wantRates)
		}

		for _, tc := range []struct{ body, field string }{
			{`{"max":10,"window":"1m","also":[{"max":5,"window":"soon"}]}`, "also[0].window"},
			{`{"max":10,"window":"1m","also":[{"max":0,"window":"1s"}]}`, "Also[0].Max"},
			{`{"max":10,"window":"1m","also":[{"max":5,"window":"1s","burst":3}]}`, "Also[0].Burst"},
			{`{"max":10,"window":"1m","also":[{"max":5,"window":"1s","colour":"red"}]}`, "colour"},
			{`{"max":10,"window":"1m","units":"yes"}`, "units"},
			{`{"max":10,"window":"1m","also":[{"max":1,"window":"1s"},{"max":1,"window":"1s"},{"max":1,"window":"1s"},{"max":1,"window":"1s"},{"max":1,"window":"1s"}]}`, "also: at most 4"},
		} {
			if a := call(t, ts, "PUT", "/v1/keys/llm/limit", "", tc.body); a.code != 400 || !strings.Contains(a.raw, tc.field) {
				t.Errorf("PUT %s: %d %s; want 400 naming %s", tc.body, a.code, a.raw, tc.field)
			}
		}
	})
}
