// Package bench measures rateltd on Redis and in-process. It is a module of its own
// (github.com/rateltd/rateltd/bench, with a replace of its parent directory), so that the peers
// it measures against stay out of the library's go.mod. Run, from this directory:
//
//	go test -run '^$' -bench . -benchtime 2s ./...
//
// and, for rateltd and its peers side by side (TestCompare):
//
//	go test -run '^TestCompare$' -count=1 -compare
//
// whose -compare.json file cmd/plots draws the plots of docs/img from.
//
// It may import the parent's internal packages (the test harness): the go command allows a
// package whose import path is below github.com/rateltd/rateltd to import
// github.com/rateltd/rateltd/internal/..., whatever module it is in.
//
// Figures of record are in docs/performance.md. Nothing here asserts speed.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/internal/testnode"
	"github.com/rateltd/rateltd/processor"
	"github.com/rateltd/rateltd/queue"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var backends = testnode.Backends

// client starts a Client on the named backend with cfg.
func client(b *testing.B, backend string, cfg rateltd.Config) *rateltd.Client {
	return testnode.Client(b, backend, cfg)
}

func noop(context.Context) (any, error) { return nil, nil }

// BenchmarkFastPath: requests granted at once, from 1, 16 and 128 goroutines, per algorithm.
// The limit is far above the rate, so every request takes the fast path.
func BenchmarkFastPath(b *testing.B) {
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
					b.ReportAllocs()
					var fails atomic.Int64
					if g == 1 {
						for range b.N {
							if _, err := c.Request(ctx, "fast", noop); err != nil {
								fails.Add(1)
							}
						}
					} else {
						b.SetParallelism(g / runtime.GOMAXPROCS(0))
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								if _, err := c.Request(ctx, "fast", noop); err != nil {
									fails.Add(1)
								}
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
}

// BenchmarkDrain: grants per second while a backlog drains through one key whose limit is far
// above what the processor can grant. Each iteration queues 2000 requests while the key is
// paused, then resumes it and waits until all have run.
func BenchmarkDrain(b *testing.B) {
	const backlog = 2000
	for _, be := range backends {
		b.Run(be, func(b *testing.B) {
			c := client(b, be, rateltd.Config{Default: rateltd.Limit{Algorithm: rateltd.TokenBucket, Max: 50_000_000, Window: time.Second, MaxQueue: backlog}})
			ctx := context.Background()
			var granting time.Duration
			for range b.N {
				if err := c.Pause(ctx, "drain"); err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				wg.Add(backlog)
				for range backlog {
					go func() {
						defer wg.Done()
						if _, err := c.Request(ctx, "drain", noop, rateltd.WithTimeout(time.Minute)); err != nil {
							b.Error(err)
						}
					}()
				}
				for {
					st, err := c.Status(ctx, "drain")
					if err != nil {
						b.Fatal(err)
					}
					if st.Queued == backlog {
						break
					}
					time.Sleep(time.Millisecond)
				}
				start := time.Now()
				if err := c.Resume(ctx, "drain"); err != nil {
					b.Fatal(err)
				}
				wg.Wait()
				granting += time.Since(start)
			}
			b.ReportMetric(float64(b.N*backlog)/granting.Seconds(), "grants/s")
		})
	}
}

// BenchmarkSlotToStart: how long after a slot frees the next waiting request starts. One key
// of 1 per 5ms keeps a line; for each grant, the slot freed at the previous grant's time plus
// the window (server time), and the request started when Acquire returned.
func BenchmarkSlotToStart(b *testing.B) {
	const window = 5 * time.Millisecond
	for _, be := range backends {
		b.Run(be, func(b *testing.B) {
			var back queue.Backend
			opts := nodeOptions(config.Limit{Max: 1, Window: window, MaxQueue: 100_000})
			if be == "redis" {
				srv := redistest.Server(b)
				r := queue.NewRedis(srv.Client(b), srv.Prefix(b), 16)
				if err := r.LoadScripts(context.Background()); err != nil {
					b.Fatal(err)
				}
				back = r
			} else {
				back = queue.NewMemory()
			}
			node, err := processor.New(context.Background(), back, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer node.Close(context.Background())
			ctx := context.Background()
			type sample struct{ at, started int64 }
			samples := make([]sample, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 8 { // eight callers keep the line non-empty
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						g, err := node.Acquire(ctx, processor.Request{Key: "slot", Priority: config.PriorityNormal, Timeout: time.Minute})
						if err != nil {
							b.Error(err)
							return
						}
						samples[i] = sample{at: g.At, started: node.ServerTime(time.Now())}
					}
				}()
			}
			wg.Wait()
			slices.SortFunc(samples, func(x, y sample) int { return int(x.at - y.at) })
			var delays []time.Duration
			for i := 1; i < len(samples); i++ {
				free := samples[i-1].at + window.Microseconds()
				if samples[i].at >= free { // granted from the line, not at once
					delays = append(delays, time.Duration(samples[i].started-free)*time.Microsecond)
				}
			}
			if len(delays) == 0 {
				return
			}
			slices.Sort(delays)
			b.ReportMetric(float64(delays[len(delays)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// nodeOptions are a processor node's options at the Client's defaults, with limit for every key.
func nodeOptions(limit config.Limit) processor.Options {
	return processor.Options{Default: limit,
		BatchSize: config.DefaultBatchSize, PollInterval: config.DefaultPollInterval, ClaimTimeout: config.DefaultClaimTimeout,
		StatsTTL: config.DefaultStatsTTL, Logger: slog.Default(), Workers: config.DefaultWorkers,
		LeaseTimeout: config.DefaultLeaseTimeout, ResultTTL: config.DefaultResultTTL, MaxPayload: config.DefaultMaxPayload,
		RetryBackoff: config.DefaultRetryBackoff}
}

// BenchmarkPeerRedisRate: go-redis/redis_rate (GCRA, one script per check, no line) on the same
// Redis and the same goroutine counts, as the yardstick for BenchmarkFastPath/redis.
func BenchmarkPeerRedisRate(b *testing.B) {
	for _, g := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("g%d", g), func(b *testing.B) {
			srv := redistest.Server(b)
			lim := redis_rate.NewLimiter(srv.Client(b))
			key := srv.Prefix(b) + ":peer"
			limit := redis_rate.PerSecond(50_000_000)
			ctx := context.Background()
			b.ReportAllocs()
			var fails atomic.Int64
			check := func() {
				if res, err := lim.Allow(ctx, key, limit); err != nil || res.Allowed == 0 {
					fails.Add(1)
				}
			}
			if g == 1 {
				for range b.N {
					check()
				}
			} else {
				b.SetParallelism(g / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						check()
					}
				})
			}
			if fails.Load() > 0 {
				b.Fatalf("%d checks failed", fails.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkLineMemory: Redis memory per waiting request. 5000 or 20000 requests wait on a paused key
// of a private Redis; reported are the growth of used_memory once client buffers have settled
// (B/waiting; what does not grow with the line, such as client buffers, counts less the
// longer the line) and the size of the line itself by MEMORY USAGE (line-B/waiting), each divided by
// the number waiting, and the growth of used_memory less the clients' buffers
// (data-B/waiting). The prefix is the default "rateltd" and the key "openai:gpt", so ticket
// sizes are realistic.
func BenchmarkLineMemory(b *testing.B) {
	for _, waiting := range []int{5000, 20000} {
		b.Run(strconv.Itoa(waiting), func(b *testing.B) { lineMemory(b, waiting, 0, 0) })
	}
	// With a cost (a limit that counts units): the ticket carries it, 3 bytes more.
	b.Run("5000/cost", func(b *testing.B) { lineMemory(b, 5000, 500, 0) })
	// With tenants (WithTenant, "acct_0000" to "acct_0009" in turn): each ticket carries its
	// tenant and weight, each entry its tag, and the line has a fair state (fair-B/waiting).
	b.Run("5000/tenants10", func(b *testing.B) { lineMemory(b, 5000, 0, 10) })
	// The same tenants queued one after the other, in turn: every ticket joins the line's tail
	// (no LINSERT), which shows what inserts in the middle of the line cost.
	b.Run("5000/tenants10-in-turn", func(b *testing.B) { lineMemory(b, 5000, 0, -10) })
}

// lineMemory measures the memory of waiting requests; with cost > 0, of that cost on a limit
// that counts units; with tenants > 0, of requests of that many tenants in turn, sent at once;
// with tenants < 0, of -tenants tenants in turn, each request queued before the next is sent.
func lineMemory(b *testing.B, waiting, cost, tenants int) {
	inTurn := tenants < 0
	tenants = max(tenants, -tenants)
	l := rateltd.Limit{Max: 100, Window: time.Minute, MaxQueue: waiting}
	var opts []rateltd.Option
	if cost > 0 {
		l.Max, l.Units = 100*cost, true
		opts = append(opts, rateltd.WithCost(cost))
	}
	for range b.N {
		srv := redistest.Fresh(b)
		rdb := srv.Client(b)
		ctx := context.Background()
		c, err := rateltd.New(rateltd.Config{Redis: rdb, Default: l})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Pause(ctx, "openai:gpt"); err != nil {
			b.Fatal(err)
		}
		before, beforeData := usedMemory(b, rdb), dataMemory(b, rdb)
		rctx, cancel := context.WithCancel(ctx)
		chans := make([]<-chan rateltd.Result, waiting)
		for i := range chans {
			o := append(slices.Clip(opts), rateltd.WithTimeout(time.Minute))
			if tenants > 0 {
				o = append(o, rateltd.WithTenant(fmt.Sprintf("acct_%04d", i%tenants)))
			}
			chans[i] = c.RequestAsync(rctx, "openai:gpt", noop, o...)
			for inTurn {
				st, err := c.Status(ctx, "openai:gpt")
				if err != nil {
					b.Fatal(err)
				}
				if st.Queued == i+1 {
					break
				}
			}
		}
		for {
			st, err := c.Status(ctx, "openai:gpt")
			if err != nil {
				b.Fatal(err)
			}
			if st.Queued == waiting {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Client buffers grown by the burst of admits shrink within a few server cron runs.
		after := usedMemory(b, rdb)
		for range 30 {
			time.Sleep(100 * time.Millisecond)
			after = min(after, usedMemory(b, rdb))
		}
		b.ReportMetric(float64(after-before)/float64(waiting), "B/waiting")
		b.ReportMetric(float64(dataMemory(b, rdb)-beforeData)/float64(waiting), "data-B/waiting")
		line, err := rdb.MemoryUsage(ctx, "rateltd:{openai:gpt}:q:"+strconv.Itoa(rateltd.PriorityNormal.Line()), 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(line)/float64(waiting), "line-B/waiting")
		if tenants > 0 {
			fair, err := rdb.MemoryUsage(ctx, "rateltd:{openai:gpt}:fair", 0).Result()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(fair)/float64(waiting), "fair-B/waiting")
		}
		cancel()
		for _, ch := range chans {
			<-ch
		}
		c.Close()
	}
}

func usedMemory(b testing.TB, rdb interface {
	Info(context.Context, ...string) *redis.StringCmd
}) int64 {
	return memoryField(b, rdb, "used_memory")
}

// dataMemory is used_memory less the buffers of the clients (mem_clients_normal): the memory
// of the data set and the server's own, which client buffers grown by a burst of admits do
// not blur.
func dataMemory(b testing.TB, rdb interface {
	Info(context.Context, ...string) *redis.StringCmd
}) int64 {
	return memoryField(b, rdb, "used_memory") - memoryField(b, rdb, "mem_clients_normal")
}

// memoryField reads one field of INFO memory.
func memoryField(b testing.TB, rdb interface {
	Info(context.Context, ...string) *redis.StringCmd
}, field string) int64 {
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s in INFO", field)
	return 0
}

// BenchmarkDurableJobs: durable jobs through one key whose limit is far above the rate, from
// enqueue to the result in Wait. 64 goroutines each enqueue a job and wait for it, in a loop;
// the node runs them on 16 or 64 workers.
func BenchmarkDurableJobs(b *testing.B) {
	for _, be := range backends {
		for _, workers := range []int{16, 64} {
			b.Run(fmt.Sprintf("%s/workers%d", be, workers), func(b *testing.B) {
				c := client(b, be, rateltd.Config{Workers: workers, Default: rateltd.Limit{Algorithm: rateltd.TokenBucket,
					Max: 50_000_000, Window: time.Second, MaxQueue: 100_000, QueueTimeout: time.Minute}})
				if err := c.Handle("echo", func(_ context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				payload := make([]byte, 100)
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range 64 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							id, err := c.Enqueue(ctx, "jobs", "echo", payload)
							if err == nil {
								_, err = c.Wait(ctx, id)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			})
		}
	}
}
