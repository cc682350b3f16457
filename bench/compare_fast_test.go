package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/ulule/limiter/v3"
	sredis "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/rateltd/rateltd"
)

// The fast path side by side: rateltd's three algorithms, go-redis/redis_rate (GCRA) and
// ulule/limiter (fixed window, Redis store), each with a limit far above the rate, so that every
// request is granted at once.

// fastLimit is far above any rate reached here: every request takes the fast path.
const fastLimit = 50_000_000

// check takes one request on key i of a run's keys.
type check func(ctx context.Context, i int) error

// fastSide is a contender on the fast path: open starts it afresh, for one run, on keys keys
// of the run's env, and returns its check and what ends it.
type fastSide struct {
	name string
	peer bool
	open func(t testing.TB, e *env, keys int) (check, func())
}

var fastSides = []fastSide{
	{name: "rateltd sliding", open: openRateltd(rateltd.Limit{Max: fastLimit, Window: time.Second})},
	{name: "rateltd fixed", open: openRateltd(rateltd.Limit{Algorithm: rateltd.FixedWindow, Max: fastLimit, Window: time.Second})},
	{name: "rateltd token", open: openRateltd(rateltd.Limit{Algorithm: rateltd.TokenBucket, Max: fastLimit, Window: time.Second})},
	{name: "redis_rate", peer: true, open: openRedisRate},
	{name: "ulule", peer: true, open: openUlule},
}

// fastScenarios: 1, 16 and 128 goroutines, on one key and over 1,000 keys.
func fastScenarios() []scenario {
	var scs []scenario
	for _, keys := range []int{1, 1000} {
		group := "fast path, one key"
		if keys > 1 {
			group = fmt.Sprintf("fast path, %d keys", keys)
		}
		for _, g := range []int{1, 16, 128} {
			sc := scenario{group: group, name: goroutines(g), unit: "req/s"}
			for _, fs := range fastSides {
				sc.sides = append(sc.sides, side{name: fs.name, peer: fs.peer, run: func(t testing.TB, e *env) sample {
					return runFast(t, e, fs.open, g, keys)
				}})
			}
			scs = append(scs, sc)
		}
	}
	return scs
}

// runFast opens a side on keys keys, warms it up and measures g goroutines taking requests
// for one window.
func runFast(t testing.TB, e *env, open func(testing.TB, *env, int) (check, func()), g, keys int) sample {
	t.Helper()
	chk, closeSide := open(t, e, keys)
	defer closeSide()
	if _, _, err := drive(g, e.cfg.warm, keys, chk); err != nil {
		t.Fatal(err)
	}
	return e.measure(t, func() (int64, []time.Duration) {
		n, lat, err := drive(g, e.cfg.window, keys, chk)
		if err != nil {
			t.Fatal(err)
		}
		return n, lat
	})
}

// drive calls chk from g goroutines until d has passed and returns how many calls succeeded
// and how long each took, or the first error. Each goroutine walks the keys in turn from its
// own starting point, so that over many keys the goroutines are on different keys.
func drive(g int, d time.Duration, keys int, chk check) (int64, []time.Duration, error) {
	ctx := context.Background()
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	lats := make([][]time.Duration, g) // each written by its goroutine until wg is done
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i * keys / g; !stop.Load(); k++ {
				at := time.Now()
				if err := chk(ctx, k%keys); err != nil {
					once.Do(func() { first = err })
					stop.Store(true)
					break
				}
				lats[i] = append(lats[i], time.Since(at))
			}
		}()
	}
	wg.Wait()
	all := slices.Concat(lats...)
	return int64(len(all)), all, first
}

func keyNames(prefix string, keys int) []string {
	names := make([]string, keys)
	for i := range names {
		names[i] = prefix + "k" + strconv.Itoa(i)
	}
	return names
}

func noopFn(context.Context) (any, error) { return nil, nil }

func openRateltd(limit rateltd.Limit) func(testing.TB, *env, int) (check, func()) {
	return func(t testing.TB, e *env, keys int) (check, func()) {
		c, err := rateltd.New(rateltd.Config{Redis: e.rdb, Prefix: e.prefix, Default: limit})
		if err != nil {
			t.Fatal(err)
		}
		names := keyNames("", keys)
		return func(ctx context.Context, i int) error {
			_, err := c.Request(ctx, names[i], noopFn)
			return err
		}, func() { c.Close() }
	}
}

var errDenied = errors.New("bench: a request was denied under a limit far above the rate")

func openRedisRate(t testing.TB, e *env, keys int) (check, func()) {
	lim := redis_rate.NewLimiter(e.rdb)
	limit := redis_rate.PerSecond(fastLimit)
	names := keyNames(e.prefix+":", keys)
	return func(ctx context.Context, i int) error {
		res, err := lim.Allow(ctx, names[i], limit)
		if err == nil && res.Allowed == 0 {
			err = errDenied
		}
		return err
	}, func() {}
}

func openUlule(t testing.TB, e *env, keys int) (check, func()) {
	store, err := sredis.NewStoreWithOptions(e.rdb, limiter.StoreOptions{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	lim := limiter.New(store, limiter.Rate{Period: time.Second, Limit: fastLimit})
	names := keyNames("", keys)
	return func(ctx context.Context, i int) error {
		res, err := lim.Get(ctx, names[i])
		if err == nil && res.Reached {
			err = errDenied
		}
		return err
	}, func() {}
}
