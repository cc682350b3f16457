package httpapi_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
)

// TestLimitJSONShadow: a shadow limit goes through PUT and GET of the limit; the status shows
// it as shadow and counts what it would have done: of 4 requests on a shadow limit of 1 a
// minute, 1 allowed and 3 that would have waited.
func TestLimitJSONShadow(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, c := server(t, backend, rateltd.Config{}, httpapi.Options{})
		if a := call(t, ts, "PUT", "/v1/keys/watched/limit", "", `{"max":1,"window":"1m","shadow":true,"queue_timeout":"2m"}`); a.code != 200 {
			t.Fatalf("PUT a shadow limit: %d %s", a.code, a.raw)
		}
		if l, _ := c.LimitOf("watched"); !l.Shadow || l.Max != 1 {
			t.Fatalf("the library holds %+v, want a shadow limit of 1", l)
		}
		var got httpapi.LimitJSON
		a := call(t, ts, "GET", "/v1/keys/watched/limit", "", "")
		if err := json.Unmarshal([]byte(a.raw), &got); err != nil || !got.Shadow {
			t.Fatalf("GET limit: %d %s", a.code, a.raw)
		}
		for range 4 {
			if _, err := c.Request(context.Background(), "watched", func(context.Context) (any, error) { return nil, nil }); err != nil {
				t.Fatal(err)
			}
		}
		var st httpapi.StatusJSON
		a = call(t, ts, "GET", "/v1/keys/watched", "", "")
		if err := json.Unmarshal([]byte(a.raw), &st); err != nil || !st.Limit.Shadow || st.Counters["shadow_allowed"] != 1 ||
			st.Counters["shadow_queued"] != 3 || st.Counters["shadow_max_wait_ms"] <= 0 || st.Counters["queued"] != 0 {
			t.Fatalf("status of the shadow key: %d %s", a.code, a.raw)
		}
	})
}
