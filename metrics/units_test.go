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

// TestMetricsOfCostUnits: the cost of every request that ran and of every job run is counted
// as granted, per group; settles count what the grants really cost, what they gave back and
// what they charged over. A request refused is granted nothing.
func TestMetricsOfCostUnits(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			m := metrics.New(metrics.Options{})
			c := testnode.Client(t, backend, rateltd.Config{Observer: m, Limits: map[string]rateltd.Limit{
				"llm": {Max: 100, Window: time.Hour, Also: []rateltd.Rate{{Max: 1000, Window: time.Hour, Units: true}}}}})
			reg := prometheus.NewRegistry()
			reg.MustRegister(m)
			ctx := context.Background()
			settle := func(n int) func(context.Context) (any, error) {
				return func(ctx context.Context) (any, error) { return nil, rateltd.Settle(ctx, n) }
			}
			c.Request(ctx, "llm:a", settle(100), rateltd.WithCost(300)) // 200 back
			c.Request(ctx, "llm:a", settle(250), rateltd.WithCost(200)) // 50 over
			c.Request(ctx, "llm:a", func(context.Context) (any, error) { return nil, nil })
			if _, err := c.Request(ctx, "llm:a", settle(1), rateltd.WithCost(900), rateltd.WithTimeout(time.Second)); err == nil {
				t.Fatal("a cost of 900 with 650 units left was granted")
			}
			done := make(chan struct{})
			c.Handle("h", func(ctx context.Context, _ []byte) ([]byte, error) {
				defer close(done)
				return nil, rateltd.Settle(ctx, 40)
			})
			if _, err := c.Enqueue(ctx, "llm:b", "h", nil, rateltd.WithCost(50)); err != nil {
				t.Fatal(err)
			}
			<-done
			units := func(name string) float64 {
				return value(t, reg, "rateltd_units_"+name+"_total", map[string]string{"group": "llm"})
			}
			// The job's run is observed just after its end is recorded, which follows the handler.
			for deadline := time.Now().Add(5 * time.Second); units("granted") < 551 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			for name, want := range map[string]float64{"granted": 300 + 200 + 1 + 50, "settled": 100 + 250 + 40, "returned": 200 + 10, "over": 50} {
				if got := units(name); got != want {
					t.Errorf("rateltd_units_%s_total{group=llm} = %v, want %v", name, got, want)
				}
			}
			if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %+v", err, problems)
			}
		})
	}
}
