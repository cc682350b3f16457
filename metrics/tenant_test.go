package metrics_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/testnode"
	"github.com/rateltd/rateltd/metrics"
)

// TestMetricsTenants: rateltd_tenants_waiting adds up, per group, the tenants waiting in its
// keys' lines, as Status.TenantsWaiting counts them (gold and silver in shared:a; gold and
// the requests of no tenant beside it in shared:b: 4); a group with no tenant waiting has 0.
func TestMetricsTenants(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			m := metrics.New(metrics.Options{})
			c := testnode.Client(t, backend, rateltd.Config{Observer: m})
			m.Watch(c)
			reg := prometheus.NewRegistry()
			reg.MustRegister(m)
			ctx := context.Background()
			// Jobs wait in line while no node runs their handler.
			for _, j := range []struct{ key, tenant string }{{"shared:a", "gold"}, {"shared:a", "gold"}, {"shared:a", "silver"},
				{"shared:b", "gold"}, {"shared:b", ""}, {"plain", ""}} {
				if _, err := c.Enqueue(ctx, j.key, "nobody", []byte("x"), rateltd.WithTenant(j.tenant)); err != nil {
					t.Fatal(err)
				}
			}
			if got := value(t, reg, "rateltd_tenants_waiting", map[string]string{"group": "shared"}); got != 4 {
				t.Errorf("rateltd_tenants_waiting{group=shared} = %v, want 4", got)
			}
			if got := value(t, reg, "rateltd_tenants_waiting", map[string]string{"group": "plain"}); got != 0 {
				t.Errorf("rateltd_tenants_waiting{group=plain} = %v, want 0", got)
			}
		})
	}
}
