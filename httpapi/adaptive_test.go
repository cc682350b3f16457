package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
)

// TestLimitJSONAdaptive: an adaptive limit is rendered with "adaptive": true and read back.
func TestLimitJSONAdaptive(t *testing.T) {
	l := rateltd.Limit{Max: 100, Window: time.Second, Adaptive: true}
	b, err := json.Marshal(httpapi.LimitToJSON(l))
	if err != nil || !strings.Contains(string(b), `"adaptive":true`) {
		t.Fatalf("rendered %s, %v", b, err)
	}
	var j httpapi.LimitJSON
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Limit(); err != nil || !got.Adaptive {
		t.Fatalf("read back %+v, %v", got, err)
	}
}

// TestStatusJSONEffective: the status of an adaptive key of 20 a minute that an upstream's 429
// cut shows the limit in force, 10, under "effective" beside the configured "limit"; a key
// that is not adaptive shows its limit under both.
func TestStatusJSONEffective(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		ts, c := server(t, backend, rateltd.Config{Limits: map[string]rateltd.Limit{
			"ad":    {Max: 20, Window: time.Minute, Adaptive: true},
			"fixed": {Max: 20, Window: time.Minute},
		}}, httpapi.Options{})
		refused := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{}}
		for _, key := range []string{"ad", "fixed"} {
			if err := c.Observe(context.Background(), key, refused); err != nil {
				t.Fatal(err)
			}
		}
		for key, want := range map[string]float64{"ad": 10, "fixed": 20} {
			a := call(t, ts, "GET", "/v1/keys/"+key, "", "")
			limit, _ := a.body["limit"].(map[string]any)
			eff, _ := a.body["effective"].(map[string]any)
			if a.code != 200 || limit["max"] != 20.0 || eff["max"] != want || eff["window"] != "1m0s" {
				t.Fatalf("status of %s: %d %s; want effective max %v beside limit max 20", key, a.code, a.raw, want)
			}
		}
	})
}
