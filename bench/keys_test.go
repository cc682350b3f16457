package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/redistest"
)

// spreadKeys is how many keys the many-keys benchmarks spread their requests over.
const spreadKeys = 1000

// spreadNames returns spreadKeys key names, each behind prefix.
func spreadNames(prefix string) []string {
	names := make([]string, spreadKeys)
	for i := range names {
		names[i] = prefix + "k" + strconv.Itoa(i)
	}
	return names
}

// spread runs check on b.N requests from g goroutines, each walking the keys from a starting
// point of its own, so that concurrent requests are mostly on different keys.
func spread(b *testing.B, g int, check func(i int) error) {
	var fails atomic.Int64
	if g == 1 {
		for i := range b.N {
			if err := check(i % spreadKeys); err != nil {
				fails.Add(1)
			}
		}
	} else {
		var next atomic.Int64
		b.SetParallelism(g / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			k := int(next.Add(1)) * 7919 // a prime, so starting points scatter over the keys
			for pb.Next() {
				k++
				if err := check(k % spreadKeys); err != nil {
					fails.Add(1)
				}
			}
		})
	}
	if fails.Load() > 0 {
		b.Fatalf("%d requests failed", fails.Load())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkFastPathKeys: BenchmarkFastPath over 1,000 keys, from 1, 16 and 128 goroutines.
func BenchmarkFastPathKeys(b *testing.B) {
	algs := map[string]rateltd.Limit{
		"sliding": {Max: 50_000_000, Window: time.Second},
		"fixed":   {Algorithm: rateltd.FixedWindow, Max: 50_000_000, Window: time.Second},
		"token":   {Algorithm: rateltd.TokenBucket, Max: 50_000_000, Window: time.Second},
	}
	for _, be := range backends {
		for _, alg := range []string{"sliding", "fixed", "token"} {
			for _, g := range []int{1, 16, 128} {
				b.Run(fmt.Sprintf("%s/%s/g%d", be, alg, g), func(b *testing.B) {
					c := client(b, be, rateltd.Config{Default: algs[alg]})
					ctx := context.Background()
					names := spreadNames("")
					b.ReportAllocs()
					spread(b, g, func(i int) error {
						_, err := c.Request(ctx, names[i], noop)
						return err
					})
				})
			}
		}
	}
}

// BenchmarkPeerRedisRateKeys: BenchmarkPeerRedisRate over 1,000 keys, as the yardstick for
// BenchmarkFastPathKeys/redis.
func BenchmarkPeerRedisRateKeys(b *testing.B) {
	for _, g := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("g%d", g), func(b *testing.B) {
			srv := redistest.Server(b)
			lim := redis_rate.NewLimiter(srv.Client(b))
			names := spreadNames(srv.Prefix(b) + ":peer:")
			limit := redis_rate.PerSecond(50_000_000)
			ctx := context.Background()
			b.ReportAllocs()
			spread(b, g, func(i int) error {
				res, err := lim.Allow(ctx, names[i], limit)
				if err == nil && res.Allowed == 0 {
					err = fmt.Errorf("refused")
				}
				return err
			})
		})
	}
}

// latencies runs check b.N times from one goroutine and reports the p50 and p99 of its
// durations, µs.
func latencies(b *testing.B, check func() error) {
	lat := make([]time.Duration, b.N)
	for i := range b.N {
		start := time.Now()
		if err := check(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-µs")
}

// BenchmarkFastPathLatency: one caller on one key, each request's latency (the goal is
// BenchmarkPeerRedisRateLatency's p50).
func BenchmarkFastPathLatency(b *testing.B) {
	algs := map[string]rateltd.Limit{
		"sliding": {Max: 50_000_000, Window: time.Second},
		"fixed":   {Algorithm: rateltd.FixedWindow, Max: 50_000_000, Window: time.Second},
		"token":   {Algorithm: rateltd.TokenBucket, Max: 50_000_000, Window: time.Second},
	}
	for _, alg := range []string{"sliding", "fixed", "token"} {
		b.Run("redis/"+alg, func(b *testing.B) {
			c := client(b, "redis", rateltd.Config{Default: algs[alg]})
			ctx := context.Background()
			b.ReportAllocs()
			latencies(b, func() error {
				_, err := c.Request(ctx, "fast", noop)
				return err
			})
		})
	}
}

// BenchmarkPeerRedisRateLatency: BenchmarkFastPathLatency's yardstick, redis_rate.
func BenchmarkPeerRedisRateLatency(b *testing.B) {
	srv := redistest.Server(b)
	lim := redis_rate.NewLimiter(srv.Client(b))
	key := srv.Prefix(b) + ":peer"
	limit := redis_rate.PerSecond(50_000_000)
	ctx := context.Background()
	b.ReportAllocs()
	latencies(b, func() error {
		res, err := lim.Allow(ctx, key, limit)
		if err == nil && res.Allowed == 0 {
			err = fmt.Errorf("refused")
		}
		return err
	})
}
