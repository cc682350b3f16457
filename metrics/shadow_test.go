package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/testnode"
	"github.com/rateltd/rateltd/metrics"
)

// TestMetricsShadow: per group, rateltd_shadow_requests counts what its shadow keys would have
// done (of 4 requests on a shadow limit of 1 every 10s: 1 allowed, 3 queued, 0 refused), and
// rateltd_shadow_wait_seconds and rateltd_shadow_wait_longest_seconds their would-be waits; a
// group with no shadow key has no series.
func TestMetricsShadow(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			m := metrics.New(metrics.Options{})
			c := testnode.Client(t, backend, rateltd.Config{Observer: m, Limits: map[string]rateltd.Limit{
				"search": {Max: 1, Window: 10 * time.Second, Shadow: true}}})
			m.Watch(c)
			reg := prometheus.NewRegistry()
			reg.MustRegister(m)
			nothing := func(context.Context) (any, error) { return nil, nil }
			for _, k := range []string{"search:a", "search:a", "search:a", "search:a", "plain"} {
				if _, err := c.Request(context.Background(), k, nothing); err != nil {
					t.Fatal(err)
				}
			}
			for outcome, want := range map[string]float64{"allowed": 1, "queued": 3, "refused": 0} {
				if got := value(t, reg, "rateltd_shadow_requests", map[string]string{"group": "search", "outcome": outcome}); got != want {
					t.Errorf("rateltd_shadow_requests{group=search,outcome=%s} = %v, want %v", outcome, got, want)
				}
			}
			longest := value(t, reg, "rateltd_shadow_wait_longest_seconds", map[string]string{"group": "search"})
			sum := value(t, reg, "rateltd_shadow_wait_seconds", map[string]string{"group": "search"})
			if longest <= 0 || longest > 10 || sum < longest || sum > 30 {
				t.Errorf("would-be waits: longest %vs, sum %vs; want 0 < longest <= 10 and longest <= sum <= 30", longest, sum)
			}
			if got := value(t, reg, "rateltd_shadow_requests", map[string]string{"group": "plain"}); got != -1 {
				t.Errorf("rateltd_shadow_requests{group=plain} = %v, want no series", got)
			}
			if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %+v", err, problems)
			}
		})
	}
}
