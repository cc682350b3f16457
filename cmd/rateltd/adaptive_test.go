package main

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

// TestLimitStringAdaptive: an adaptive limit says so where limits are written.
func TestLimitStringAdaptive(t *testing.T) {
	if s := limitString(rateltd.Limit{Max: 100, Window: time.Second, Adaptive: true}); !strings.HasSuffix(s, ", adaptive") {
		t.Fatalf("%q", s)
	}
	if s := limitString(rateltd.Limit{Max: 100, Window: time.Second}); strings.Contains(s, "adaptive") {
		t.Fatalf("%q", s)
	}
}

// TestStatusEffective: for an adaptive key set at run time (limit set --adaptive) and cut by an
// upstream's 429, status shows a table of the limit configured and the one in force, and its
// JSON carries both; a key that is not adaptive is not in that table.
func TestStatusEffective(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	if code, out, errOut := c.run("limit", "set", "ad", "--max", "20", "--window", "1m", "--adaptive"); code != 0 {
		t.Fatalf("limit set --adaptive: %d %q %q", code, out, errOut)
	}
	c.eventually("the library sees the adaptive limit", func() bool { l, _ := c.lib.LimitOf("ad"); return l.Adaptive })
	refused := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{}}
	if err := c.lib.Observe(ctx, "ad", refused); err != nil {
		t.Fatal(err)
	}
	c.lib.Request(ctx, "plain", func(context.Context) (any, error) { return nil, nil })
	code, out, _ := c.run("status", "ad", "plain")
	flat := strings.Join(strings.Fields(out), " ")
	for _, line := range []string{"KEY ADAPTIVE LIMIT IN FORCE", "ad 20/1m sliding 10/1m sliding"} {
		if code != 0 || !strings.Contains(flat, line) {
			t.Fatalf("status: %d, no line %q in\n%s", code, line, out)
		}
	}
	if _, table, _ := strings.Cut(flat, "KEY ADAPTIVE LIMIT IN FORCE"); strings.Contains(table, "plain") {
		t.Fatalf("status shows a key that is not adaptive in the adaptive table:\n%s", out)
	}
	var sts []httpapi.StatusJSON
	if code, out, _ := c.run("status", "ad", "--json"); code != 0 || json.Unmarshal([]byte(out), &sts) != nil ||
		len(sts) != 1 || sts[0].Limit.Max != 20 || sts[0].Effective.Max != 10 {
		t.Fatalf("status --json: %d %q", code, out)
	}
}
