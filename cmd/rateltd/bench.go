package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
)

func init() {
	var o benchOptions
	commands = append(commands, &command{name: "bench", args: "",
		help: "Measure rateltd on your own Redis: the fast path (nobody waits), the queued path (callers over a\n" +
			"limit) and durable jobs, with throughput and p50/p99 latencies. It writes under a prefix of its\n" +
			"own, <prefix>-bench-<unix nanos>, and deletes every key of that prefix when done; it touches no\n" +
			"other key. It needs a Redis named by --redis, --cluster, $REDIS_URL or --config, or --memory\n" +
			"for the in-process backend. Each measurement runs for --duration; durable jobs make two, and\n" +
			"wait up to --duration between them for the jobs left in line.",
		flags: o.register,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("bench takes no arguments, got %q", args)
			}
			if err := o.check(); err != nil {
				return err
			}
			return bench(ctx, e, o)
		}})
}

// benchOptions are the flags of bench.
type benchOptions struct {
	duration               time.Duration
	goroutines, keys, rate int
	algorithm              string
	memory                 bool
	alg                    rateltd.Algorithm // algorithm, parsed by check
}

func (o *benchOptions) register(fs *flag.FlagSet) {
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each measurement runs")
	fs.IntVar(&o.goroutines, "goroutines", 16, "concurrent callers; also the durable-job producers and workers")
	fs.IntVar(&o.keys, "keys", 1, "keys the fast path and durable jobs spread over (the queued path uses one)")
	fs.IntVar(&o.rate, "rate", 1000, "the queued path's limit, per second")
	fs.StringVar(&o.algorithm, "algorithm", "sliding", "sliding, fixed or token")
	fs.BoolVar(&o.memory, "memory", false, "measure the in-process backend instead of a Redis")
}

func (o *benchOptions) check() error {
	alg, err := config.ParseAlgorithm(o.algorithm)
	if err != nil {
		return usageError{err.Error()}
	}
	o.alg = alg
	switch {
	case o.duration < 10*time.Millisecond:
		return usagef("bench: --duration %v: at least 10ms", o.duration)
	case o.goroutines < 1 || o.goroutines > 10_000:
		return usagef("bench: --goroutines must be 1 to 10000, got %d", o.goroutines)
	case o.keys < 1 || o.keys > 100_000:
		return usagef("bench: --keys must be 1 to 100000, got %d", o.keys)
	case o.rate < 1 || o.rate > 1_000_000:
		return usagef("bench: --rate must be 1 to 1000000, got %d", o.rate)
	}
	return nil
}

// Keys and limits of the run. Under a prefix of its own, plain names cannot meet anyone's keys.
const (
	fastGroup   = "fast"   // keys fast:0 … fast:<keys-1>
	queuedKey   = "queued" // the queued path's one key
	jobsGroup   = "jobs"   // keys jobs:0 … jobs:<keys-1>
	benchJob    = "bench-noop"
	farAbove    = 1_000_000_000 // per second: no caller reaches it
	maxBacklog  = 20_000        // durable jobs waiting at most, so a slow Redis is not filled
	jobQueueMax = 100_000
)

// queuedLimit is --rate per second in windows of about 10ms, so that a short run still spans
// many windows and its steady state shows, not only the first window's burst.
func (o benchOptions) queuedLimit() rateltd.Limit {
	n := (o.rate + 99) / 100
	return rateltd.Limit{Algorithm: o.alg, Max: n, Window: time.Duration(n) * time.Second / time.Duration(o.rate),
		MaxQueue: max(1000, 2*o.goroutines)}
}

func (o benchOptions) limits() map[string]rateltd.Limit {
	far := rateltd.Limit{Algorithm: o.alg, Max: farAbove, Window: time.Second}
	jobs := far
	jobs.MaxQueue, jobs.QueueTimeout = jobQueueMax, 10*time.Minute
	return map[string]rateltd.Limit{fastGroup: far, queuedKey: o.queuedLimit(), jobsGroup: jobs}
}

// benchRun is one run of bench.
type benchRun struct {
	o   benchOptions
	c   *rateltd.Client
	out io.Writer
	t0  time.Time // times of the run are kept as durations since t0: monotonic

	// Written by the Client's callers (ObserveRequest), read between sections.
	succeeded, queued atomic.Int64
}

// ObserveRequest counts the requests that waited in line, which only the library knows.
func (r *benchRun) ObserveRequest(ev rateltd.RequestEvent) {
	if ev.Outcome == rateltd.OutcomeSucceeded {
		r.succeeded.Add(1)
		if ev.Queued {
			r.queued.Add(1)
		}
	}
}

func bench(ctx context.Context, e *env, o benchOptions) (err error) {
	rdb, where, err := benchRedis(e, o.memory)
	if err != nil {
		return err
	}
	prefix := fmt.Sprintf("%s-bench-%d", e.g.prefix, time.Now().UnixNano())
	if rdb != nil {
		defer rdb.Close()
		where += ", prefix " + prefix
	}
	r := &benchRun{o: o, out: e.out, t0: time.Now()}
	r.c, err = rateltd.New(rateltd.Config{Redis: rdb, Prefix: prefix, Limits: o.limits(), Workers: o.goroutines, Observer: r})
	if err != nil {
		if rdb != nil {
			// New may have written before it failed; most likely Redis cannot be reached, and
			// New's error says so: the removal's own is not worth a second line.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = removePrefix(ctx, rdb, prefix)
			cancel()
		}
		return err
	}
	if rdb != nil {
		// Also when the run fails or is interrupted: the keys of this run go in every case.
		defer func() { err = errors.Join(err, removeRun(ctx, e.out, rdb, prefix)) }()
	}
	defer r.c.Close()
	fmt.Fprintf(e.out, "rateltd bench: %s; %s per measurement, %s\n", where, o.duration, o.alg)
	for _, section := range []func(context.Context) error{r.fastPath, r.queuedPath, r.durableJobs} {
		fmt.Fprintln(e.out)
		if err := section(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bench: interrupted: %w", ctx.Err())
		}
	}
	return r.c.Close()
}

// benchRedis connects to the Redis the flags name, and says where it is without its password.
// Unlike other commands, bench never falls back to the default address: it writes, and the
// user must name the Redis to write to.
func benchRedis(e *env, memory bool) (redis.UniversalClient, string, error) {
	if memory {
		if e.g.redisSet {
			return nil, "", usagef("bench: --memory measures the in-process backend; it takes no --redis or --cluster")
		}
		return nil, "in-process backend", nil
	}
	f, err := e.fileConfig()
	if err != nil {
		return nil, "", err
	}
	rdb, err := e.redisClient(f, true)
	if err != nil {
		return nil, "", err
	}
	switch c := rdb.(type) {
	case nil:
		return nil, "", usagef("bench: name the Redis to measure with --redis URL, --cluster host:port,... or $REDIS_URL (it writes keys under a prefix of its own and deletes them), or use --memory")
	case *redis.ClusterClient:
		return c, "Redis Cluster at " + strings.Join(c.Options().Addrs, ","), nil
	case *redis.Client:
		return c, fmt.Sprintf("Redis at %s db %d", c.Options().Addr, c.Options().DB), nil
	}
	return rdb, "Redis", nil
}

// removeRun deletes the run's keys and says how many went. It runs after Close (nothing of the
// run writes any more), on a context of its own so that an interrupted run is cleaned up too.
func removeRun(ctx context.Context, out io.Writer, rdb redis.UniversalClient, prefix string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	n, err := removePrefix(ctx, rdb, prefix)
	if err != nil {
		return fmt.Errorf("bench: removing the keys of prefix %s (%d removed): %w", prefix, n, err)
	}
	fmt.Fprintf(out, "\nremoved the run's %d keys (prefix %s)\n", n, prefix)
	return nil
}

// removePrefix unlinks every key named prefix + ":…", on every master of a cluster, and
// returns how many it removed. One pass finds them all: SCAN returns every key present for the
// whole scan, and nothing of the run writes any more.
func removePrefix(ctx context.Context, rdb redis.UniversalClient, prefix string) (int64, error) {
	pattern := globQuote(prefix) + ":*"
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return unlinkMatching(ctx, rdb, pattern)
	}
	// A cluster client sends a SCAN to any node: each master is scanned on its own.
	var total atomic.Int64
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := unlinkMatching(ctx, m, pattern)
		total.Add(n)
		return err
	})
	return total.Load(), err
}

// unlinkMatching scans one node for keys matching pattern and unlinks them one by one: keys of
// different hash slots may not share a command on a cluster.
func unlinkMatching(ctx context.Context, node redis.Cmdable, pattern string) (int64, error) {
	var n int64
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			pipe := node.Pipeline()
			cmds := make([]*redis.IntCmd, len(keys))
			for i, k := range keys {
				cmds[i] = pipe.Unlink(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return n, err
			}
			for _, c := range cmds {
				n += c.Val() // SCAN may return a key twice: count what went
			}
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// globQuote quotes the characters SCAN's MATCH gives a meaning to.
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// spin runs fn on n goroutines until d has passed or ctx ends, and returns when they started,
// as a time since t0, and how long they ran. The goroutines' ctx is cancelled at the end rather
// than given a deadline: a request with a deadline takes more care to end by it, and a request
// that the end of a measurement cuts short must not count as a failure.
func spin(ctx context.Context, t0 time.Time, n int, d time.Duration, fn func(ctx context.Context, g int)) (from, took time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := time.AfterFunc(d, cancel)
	defer stop.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() { fn(ctx, g) })
	}
	wg.Wait()
	return start.Sub(t0), time.Since(start)
}

// failures counts the errors of a section other than its end, keeping the first.
type failures struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error // guarded by mu
}

func (f *failures) add(err error) {
	if f.n.Add(1) == 1 {
		f.mu.Lock()
		f.first = err
		f.mu.Unlock()
	}
}

// err returns the first error, nil when there was none.
func (f *failures) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first
}

func (f *failures) print(w io.Writer) {
	if n := f.n.Load(); n > 0 {
		f.mu.Lock()
		defer f.mu.Unlock()
		fmt.Fprintf(w, "  errors         %d (the first: %v)\n", n, f.first)
	}
}

// merged returns the samples of every goroutine in one sorted slice.
func merged(per [][]time.Duration) []time.Duration {
	all := slices.Concat(per...)
	slices.Sort(all)
	return all
}

// pct returns the p-th percentile (0 < p ≤ 100) of sorted samples, by nearest rank.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// p50p99 prints the median and the 99th percentile of sorted samples, or says there were none.
func p50p99(sorted []time.Duration) string {
	if len(sorted) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p99 %s", short(pct(sorted, 50)), short(pct(sorted, 99)))
}

// short rounds d to about three significant digits.
func short(d time.Duration) time.Duration {
	switch {
	case d < 10*time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < 100*time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// perSecond is n per d.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
