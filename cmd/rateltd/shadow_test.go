package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rateltd/rateltd/httpapi"
)

// TestLimitSetShadow: limit set takes --shadow; the library holds it, limit get shows it, and
// status shows, for a shadow key only, what the limit would have done as a table and in its
// JSON's counters.
func TestLimitSetShadow(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	if code, out, errOut := c.run("limit", "set", "search", "--max", "1", "--window", "10s", "--shadow"); code != 0 ||
		!strings.Contains(out, "search: 1/10s sliding, shadow") {
		t.Fatalf("limit set --shadow: %d %q %q", code, out, errOut)
	}
	c.eventually("the library sees the shadow limit", func() bool {
		l, _ := c.lib.LimitOf("search")
		return l.Shadow && l.Max == 1
	})
	if code, out, _ := c.run("limit", "get", "search", "--json"); code != 0 || !strings.Contains(out, `"shadow":true`) {
		t.Fatalf("limit get --json: %d %q", code, out)
	}
	for range 3 {
		if _, err := c.lib.Request(ctx, "search", func(context.Context) (any, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	c.lib.Request(ctx, "plain", func(context.Context) (any, error) { return nil, nil })
	code, out, _ := c.run("status", "search", "plain")
	flat := strings.Join(strings.Fields(out), " ")
	for _, line := range []string{"KEY SHADOW ALLOWED WOULD QUEUE LONGEST WAIT MEAN WAIT WOULD REFUSE", "search 1 2 "} {
		if code != 0 || !strings.Contains(flat, line) {
			t.Fatalf("status: %d, no line %q in\n%s", code, line, out)
		}
	}
	if strings.Contains(flat, "plain 0 0") {
		t.Fatalf("status shows shadow counts of a key with no shadow limit:\n%s", out)
	}
	var sts []httpapi.StatusJSON
	if code, out, _ := c.run("status", "search", "--json"); code != 0 || json.Unmarshal([]byte(out), &sts) != nil ||
		len(sts) != 1 || !sts[0].Limit.Shadow || sts[0].Counters["shadow_queued"] != 2 {
		t.Fatalf("status --json: %d %q", code, out)
	}
}
