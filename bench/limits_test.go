package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
)

// BenchmarkFastPathLimits: the fast path on Redis under the limits that real APIs state, beside
// the plain one: "plain" one rate counting requests; "rates+cost" 500 requests a minute-scale
// rate and a rate of cost units, each request of cost 50 (two rates, a cost, in one script);
// "cap" the plain rate with a concurrency cap (a slot taken at the grant and released when fn
// returns: one command more per request). Every limit is far above the rate, so every request
// takes the fast path. Run the three in one go (-bench FastPathLimits) for same-run ratios.
func BenchmarkFastPathLimits(b *testing.B) {
	limits := []struct {
		name string
		l    rateltd.Limit
		opts []rateltd.Option
	}{
		{"plain", rateltd.Limit{Max: 50_000_000, Window: time.Second}, nil},
		{"rates+cost", rateltd.Limit{Max: 50_000_000, Window: time.Second,
			Also: []rateltd.Rate{{Max: 2_000_000_000, Window: time.Second, Units: true}}}, []rateltd.Option{rateltd.WithCost(50)}},
		{"cap", rateltd.Limit{Max: 50_000_000, Window: time.Second, Concurrency: 100_000}, nil},
	}
	for _, g := range []int{1, 16, 128} {
		for _, lim := range limits {
			b.Run(fmt.Sprintf("%s/g%d", lim.name, g), func(b *testing.B) {
				c := client(b, "redis", rateltd.Config{Default: lim.l})
				ctx := context.Background()
				b.ReportAllocs()
				var fails atomic.Int64
				do := func() {
					if _, err := c.Request(ctx, "fast", noop, lim.opts...); err != nil {
						fails.Add(1)
					}
				}
				if g == 1 {
					for range b.N {
						do()
					}
				} else {
					b.SetParallelism(g / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							do()
						}
					})
				}
				if fails.Load() > 0 {
					b.Fatalf("%d requests failed", fails.Load())
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}
