package metrics_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/testnode"
	"github.com/rateltd/rateltd/metrics"
)

// TestMetricsInFlight: rateltd_in_flight is, per group, the slots of its keys' concurrency caps
// held now (a cap alone, and a rate with a cap); a group with no capped key has no series.
func TestMetricsInFlight(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			m := metrics.New(metrics.Options{})
			c := testnode.Client(t, backend, rateltd.Config{Observer: m, Limits: map[string]rateltd.Limit{
				"pool": {Concurrency: 3}, "pool:b": {Max: 10, Window: time.Minute, Concurrency: 2}}})
			m.Watch(c)
			reg := prometheus.NewRegistry()
			reg.MustRegister(m)
			ctx := context.Background()
			nothing := func(context.Context) (any, error) { return nil, nil }
			for _, k := range []string{"pool:a", "pool:b", "plain"} { // the collector reads the keys it has seen
				if _, err := c.Request(ctx, k, nothing); err != nil {
					t.Fatal(err)
				}
			}
			// A call frees its slot in the background once it returns: wait for the warm-up calls'
			// slots to be free, or the gauge would count them with the three held below.
			for _, k := range []string{"pool:a", "pool:b"} {
				deadline := time.Now().Add(5 * time.Second)
				for {
					st, err := c.Status(ctx, k)
					if err != nil {
						t.Fatal(err)
					}
					if st.InFlight == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: %d slots still held 5 s after the warm-up calls returned", k, st.InFlight)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			release := make(chan struct{})
			var wg sync.WaitGroup
			defer func() { close(release); wg.Wait() }()
			var started sync.WaitGroup
			for _, k := range []string{"pool:a", "pool:a", "pool:b"} {
				started.Add(1)
				wg.Go(func() {
					c.Request(ctx, k, func(context.Context) (any, error) { started.Done(); <-release; return nil, nil })
				})
			}
			started.Wait()
			if got := value(t, reg, "rateltd_in_flight", map[string]string{"group": "pool"}); got != 3 {
				t.Fatalf("rateltd_in_flight{group=pool} = %v, want 3", got)
			}
			if got := value(t, reg, "rateltd_in_flight", map[string]string{"group": "plain"}); got != -1 {
				t.Fatalf("rateltd_in_flight{group=plain} = %v, want no series", got)
			}
			if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %+v", err, problems)
			}
		})
	}
}
