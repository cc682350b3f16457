package httpapi_test

import (
	"encoding/json"
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
