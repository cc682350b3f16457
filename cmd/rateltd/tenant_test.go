package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
)

// TestLimitSetTenants: limit set takes --tenant-weight (repeated) and --max-queue-per-tenant;
// the library holds them, limit get shows them; a bad weight is a usage error. status shows,
// for a key with tenants waiting only, how many wait and the top tenants, and --json has them.
func TestLimitSetTenants(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	code, out, errOut := c.run("limit", "set", "shared", "--max", "10", "--window", "1m", "--tenant-weight", "gold=3",
		"--tenant-weight", "silver=2", "--max-queue-per-tenant", "5")
	if code != 0 || !strings.Contains(out, "shared: 10/1m sliding, tenant weights gold=3,silver=2, max 5 queued per tenant") {
		t.Fatalf("limit set --tenant-weight: %d %q %q", code, out, errOut)
	}
	c.eventually("the library sees the tenants' weights", func() bool {
		l, _ := c.lib.LimitOf("shared")
		return l.TenantWeights["gold"] == 3 && l.TenantWeights["silver"] == 2 && l.MaxQueuePerTenant == 5
	})
	if code, out, _ := c.run("limit", "get", "shared", "--json"); code != 0 ||
		!strings.Contains(out, `"tenant_weights":{"gold":3,"silver":2},"max_queue_per_tenant":5`) {
		t.Fatalf("limit get --json: %d %q", code, out)
	}
	for _, bad := range []string{"gold", "gold=0", "gold=x", "a,b=2"} {
		if code, _, errOut := c.run("limit", "set", "shared", "--max", "10", "--window", "1m", "--tenant-weight", bad); code != 2 {
			t.Errorf("--tenant-weight %s: exit %d %q, want 2", bad, code, errOut)
		}
	}

	// Jobs wait in line while no node runs their handler.
	for _, tenant := range []string{"gold", "gold", "silver", ""} {
		if _, err := c.lib.Enqueue(ctx, "shared", "nobody", []byte("x"), rateltd.WithTenant(tenant)); err != nil {
			t.Fatal(err)
		}
	}
	c.lib.Request(ctx, "plain", func(context.Context) (any, error) { return nil, nil })
	code, out, _ = c.run("status", "shared", "plain")
	flat := strings.Join(strings.Fields(out), " ")
	for _, line := range []string{"KEY TENANTS WAITING TENANT WAITING shared 3 gold 2 - 1 silver 1"} {
		if code != 0 || !strings.Contains(flat, line) {
			t.Fatalf("status: %d, no line %q in\n%s", code, line, out)
		}
	}
	if code, out, _ := c.run("status", "plain"); code != 0 || strings.Contains(out, "TENANTS") {
		t.Fatalf("status of a key with no tenants: %d, a tenants table in\n%s", code, out)
	}
	var sts []httpapi.StatusJSON
	if code, out, _ := c.run("status", "shared", "--json"); code != 0 || json.Unmarshal([]byte(out), &sts) != nil ||
		len(sts) != 1 || sts[0].TenantsWaiting != 3 || fmt.Sprint(sts[0].Tenants) != "[{gold 2} { 1} {silver 1}]" {
		t.Fatalf("status --json: %d %q", code, out)
	}
}
