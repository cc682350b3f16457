package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd/httpapi"
)

// TestLimitSetConcurrency: limit set takes --concurrency, alone (a cap with no rate) or beside
// a rate; the library holds it, limit get shows it, and status shows the slots of capped keys
// (cap, in flight, free) as a table and in_flight in its JSON, and no such table otherwise.
func TestLimitSetConcurrency(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	if code, out, errOut := c.run("limit", "set", "render", "--concurrency", "2"); code != 0 || !strings.Contains(out, "render: concurrency 2") {
		t.Fatalf("limit set --concurrency alone: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := c.run("limit", "set", "api", "--max", "500", "--window", "1m", "--concurrency", "20"); code != 0 ||
		!strings.Contains(out, "api: 500/1m sliding, concurrency 20") {
		t.Fatalf("limit set --concurrency with a rate: %d %q %q", code, out, errOut)
	}
	c.eventually("the library sees the caps set", func() bool {
		r, _ := c.lib.LimitOf("render")
		a, _ := c.lib.LimitOf("api")
		return r.Concurrency == 2 && r.Max == 0 && a.Concurrency == 20 && a.Max == 500
	})
	if code, out, _ := c.run("limit", "get", "render", "--json"); code != 0 || !strings.Contains(out, `"concurrency":2`) {
		t.Fatalf("limit get --json: %d %q", code, out)
	}

	running, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.lib.Request(ctx, "render", func(context.Context) (any, error) { close(running); <-release; return nil, nil })
	}()
	defer func() { close(release); <-done }()
	select {
	case <-running:
	case <-time.After(5 * time.Second):
		t.Fatal("a request of render did not start within 5s")
	}
	c.lib.Request(ctx, "plain", func(context.Context) (any, error) { return nil, nil })
	code, out, _ := c.run("status", "render", "plain")
	flat := strings.Join(strings.Fields(out), " ")
	for _, line := range []string{"KEY CONCURRENCY IN FLIGHT FREE", "render 2 1 1", "render concurrency 2 1 1"} {
		if code != 0 || !strings.Contains(flat, line) {
			t.Fatalf("status: %d, no line %q in\n%s", code, line, out)
		}
	}
	if strings.Contains(flat, "plain 3 ") {
		t.Fatalf("status shows slots of a key with no cap:\n%s", out)
	}
	if _, out, _ := c.run("status", "plain"); strings.Contains(out, "IN FLIGHT") {
		t.Fatalf("status of a key with no cap shows a table of slots:\n%s", out)
	}
	var sts []httpapi.StatusJSON
	if code, out, _ := c.run("status", "render", "--json"); code != 0 || json.Unmarshal([]byte(out), &sts) != nil ||
		len(sts) != 1 || sts[0].InFlight != 1 || sts[0].Limit.Concurrency != 2 {
		t.Fatalf("status --json: %d %q", code, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--concurrency", "-1"}, "limit.Concurrency"},
		{[]string{"--concurrency", "2", "--max", "5"}, "limit.Window"},
		{[]string{"--concurrency", "many"}, "concurrency"},
	} {
		code, _, errOut := c.run(append([]string{"limit", "set", "k"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("limit set k %q: exit %d, %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if l, _ := c.lib.LimitOf("k"); l.Concurrency != 0 {
		t.Fatalf("a refused limit set reached the library: %+v", l)
	}
}
