package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/rateltd/rateltd"
)

// BenchmarkFastPathTraced: BenchmarkFastPath's request on one goroutine (sliding log) with a
// TracerProvider of the OpenTelemetry SDK that records every span (sampled) and exports none,
// and with one that samples none: what a span per request costs beside BenchmarkFastPath's
// untraced figure.
func BenchmarkFastPathTraced(b *testing.B) {
	providers := map[string]trace.TracerProvider{
		"sampled":     sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())),
		"not-sampled": sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())),
	}
	for _, be := range backends {
		for _, name := range []string{"sampled", "not-sampled"} {
			b.Run(fmt.Sprintf("%s/%s", be, name), func(b *testing.B) {
				c := client(b, be, rateltd.Config{Default: rateltd.Limit{Max: 50_000_000, Window: time.Second},
					TracerProvider: providers[name]})
				ctx := context.Background()
				b.ReportAllocs()
				for range b.N {
					if _, err := c.Request(ctx, "fast", noop); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}
