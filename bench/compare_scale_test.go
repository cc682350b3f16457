package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/bench/internal/result"
	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/processor"
	"github.com/rateltd/rateltd/queue"
)

// The cost against the number of active keys (keys with a line), rateltd alone: the peers
// keep no line. A drain queues requests on every key while everything is paused, reads what
// they cost in Redis memory, then resumes and counts the grants per second one node's
// processor reaches until every request has run (BenchmarkDrain and BenchmarkLineMemory, over
// many keys). Slot → start keeps many keys at their limit, each with a line, and measures the
// delay from a slot freeing to the start of the request it goes to (BenchmarkSlotToStart, over
// many keys).

func scaleScenarios(cfg compareConfig) []scenario {
	var scs []scenario
	for _, keys := range cfg.scaleKeys {
		per := max(1, cfg.waiting/keys)
		name := fmt.Sprintf("%s, %d waiting each", keysName(keys), per)
		sc := scenario{group: "active keys: lines drained by one node", name: name, unit: "grants/s", runs: cfg.scaleRuns,
			part: result.PartScale, keys: keys}
		sc.sides = []side{{name: "rateltd", run: func(t testing.TB, e *env) sample { return runDrain(t, e, keys, per) }}}
		scs = append(scs, sc)
	}
	return scs
}

func keysName(keys int) string {
	if keys == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys", keys)
}

// drainPoll is the drains' poll interval. At every poll a processor tries again each key held
// paused for good and claims for each key it waits on, one key at a time: at the default (1s),
// with 10,000 keys and more held paused while their lines fill, that takes the whole loop, the
// node's heartbeat lapses and its requests rejoin their lines. Keys over their limit wait for
// their next slot instead, which the pause stands in for here; the resume takes up every key
// at once (runDrain), so the drain does not wait for a poll either.
const drainPoll = time.Minute

// fillBatch bounds the requests a drain queues at once: a burst of 100,000 admits makes the
// node's own follow-up calls (the index of keys with a line, the wake-ups) time out.
const fillBatch = 10_000

// runDrain queues per requests on each of keys keys on one processor node (the engine of a
// Client) while everything is paused, and measures from the resume until every one has been
// granted. The memory they take is the growth of used_memory from before the first was queued
// to after the last, once client buffers have settled; it includes what every key with a line
// costs, whatever its length.
func runDrain(t testing.TB, e *env, keys, per int) sample {
	t.Helper()
	ctx := context.Background()
	back, node := redisNode(t, e, config.Limit{Max: fastLimit, Window: time.Second, MaxQueue: per, QueueTimeout: 5 * time.Minute}, drainPoll)
	defer node.Close(ctx)
	pause := func(until int64) {
		if err := back.SetRuntimePause(ctx, "*", until); err != nil {
			t.Fatal(err)
		}
		if err := node.RefreshRuntime(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pause(queue.PausedForever)
	before := usedMemory(t, e.probe)
	names := keyNames("", keys)
	var granted sync.WaitGroup
	var once sync.Once
	var failed error // written once by a requester, read after granted is done
	launched, unchecked := 0, 0
	for k, name := range names {
		for range per {
			granted.Add(1)
			go func() {
				defer granted.Done()
				if _, err := node.Acquire(ctx, processor.Request{Key: name, Priority: config.PriorityNormal}); err != nil {
					once.Do(func() { failed = err })
				}
			}()
		}
		launched, unchecked = launched+per, unchecked+per
		if unchecked >= fillBatch || k == len(names)-1 {
			awaitQueued(t, e, names[:k+1], launched)
			unchecked = 0
		}
	}
	grown := settledMemory(t, e.probe, e.cfg.settle) - before
	s := e.measure(t, func() (int64, []time.Duration) {
		pause(queue.NotPaused)
		for _, name := range names {
			node.Recheck(name)
		}
		granted.Wait()
		return int64(launched), nil
	})
	if failed != nil {
		t.Fatal(failed)
	}
	s.Waiting, s.BytesPerWaiting = launched, float64(grown)/float64(launched)
	return s
}

// redisNode starts a processor node on the run's Redis client and prefix, limit for every key.
func redisNode(t testing.TB, e *env, limit config.Limit, poll time.Duration) (*queue.Redis, *processor.Node) {
	t.Helper()
	back := queue.NewRedis(e.rdb, e.prefix, config.DefaultIndexShards)
	if err := back.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	opts := nodeOptions(limit)
	opts.PollInterval = poll
	node, err := processor.New(context.Background(), back, opts)
	if err != nil {
		t.Fatal(err)
	}
	return back, node
}

// awaitQueued waits until want requests wait in the normal-priority lines of names. It reads
// the lines' lengths itself: their names follow queue/keys.go, as BenchmarkLineMemory's do.
func awaitQueued(t testing.TB, e *env, names []string, want int) {
	t.Helper()
	ctx := context.Background()
	line := strconv.Itoa(rateltd.PriorityNormal.Line())
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		n := 0
		for chunk := range slices.Chunk(names, 10_000) {
			pipe := e.probe.Pipeline()
			lens := make([]*redis.IntCmd, len(chunk))
			for i, k := range chunk {
				lens[i] = pipe.LLen(ctx, e.prefix+":{"+k+"}:q:"+line)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			for _, l := range lens {
				n += int(l.Val())
			}
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests queued within 2 minutes", n, want)
		}
	}
}

// settledMemory is used_memory once the client buffers grown by a burst of commands have
// shrunk, which takes a few server cron runs: the least of the readings over d.
func settledMemory(t testing.TB, probe *redis.Client, d time.Duration) int64 {
	least := usedMemory(t, probe)
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		least = min(least, usedMemory(t, probe))
	}
	return least
}

func slotScenario(cfg compareConfig) scenario {
	name := fmt.Sprintf("%s at their limit, 1 per %v each, 2 callers each", keysName(cfg.slotKeys), cfg.slotWindow)
	if cfg.slotPhases {
		name += ", phases spread"
	}
	sc := scenario{group: "slot → start", name: name, unit: "grants/s", runs: cfg.scaleRuns, part: result.PartSlot, keys: cfg.slotKeys}
	sc.sides = []side{{name: "rateltd", run: func(t testing.TB, e *env) sample { return runSlot(t, e, cfg) }}}
	return sc
}

// slotGrant is one grant of runSlot: its key, its time and when its caller had it (server µs),
// and whether it waited in line.
type slotGrant struct {
	key         int
	at, started int64
	queued      bool
}

// runSlot keeps cfg.slotKeys keys at a limit of 1 per cfg.slotWindow, two callers on each
// taking grants from one node in a loop, so that at every slot one of them waits in line.
// After cfg.slotWarm windows of warm-up it measures three windows (at least the run's window):
// the grants per second the node makes, and the delay from each slot freeing (the key's
// previous grant plus the window) to the start of the request it went to, p50 and p99. All
// callers start at once, so that the keys' slots recur together, a burst each window; with
// cfg.slotPhases, the callers of key i start i/keys of a window late, so that the slots are
// spread evenly over the window.
func runSlot(t testing.TB, e *env, cfg compareConfig) sample {
	t.Helper()
	keys, window := cfg.slotKeys, cfg.slotWindow
	_, node := redisNode(t, e, config.Limit{Max: 1, Window: window, MaxQueue: 100, QueueTimeout: time.Minute}, config.DefaultPollInterval)
	defer node.Close(context.Background())
	ctx, stop := context.WithCancel(context.Background())
	names := keyNames("", keys)
	grants := make([][]slotGrant, 2*keys) // each written by its caller until wg is done
	var total atomic.Int64
	var once sync.Once
	var failed error // written once by a caller, read after wg is done
	var wg sync.WaitGroup
	for i := range 2 * keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.slotPhases {
				time.Sleep(time.Duration(i/2) * window / time.Duration(keys))
			}
			for ctx.Err() == nil {
				g, err := node.Acquire(ctx, processor.Request{Key: names[i/2], Priority: config.PriorityNormal, Timeout: time.Minute})
				if err != nil {
					if ctx.Err() == nil {
						once.Do(func() { failed = err })
					}
					return
				}
				grants[i] = append(grants[i], slotGrant{key: i / 2, at: g.At, started: node.ServerTime(time.Now()), queued: g.Queued})
				total.Add(1)
			}
		}()
	}
	time.Sleep(time.Duration(cfg.slotWarm) * window)
	var from, to int64
	s := e.measure(t, func() (int64, []time.Duration) {
		n0 := total.Load()
		from = node.ServerTime(time.Now())
		time.Sleep(max(3*window, e.cfg.window))
		to = node.ServerTime(time.Now())
		return total.Load() - n0, nil
	})
	stop()
	wg.Wait()
	if failed != nil {
		t.Fatal(failed)
	}
	if delays := slotDelays(grants, window, from, to); len(delays) > 0 {
		s.P50, s.P99 = quantileMs(delays, 0.50), quantileMs(delays, 0.99)
	}
	return s
}

// slotDelays returns, for every grant from the line that started within [from, to], the time
// from its key's slot freeing to its start.
func slotDelays(grants [][]slotGrant, window time.Duration, from, to int64) []time.Duration {
	all := slices.Concat(grants...)
	slices.SortFunc(all, func(x, y slotGrant) int {
		if x.key != y.key {
			return x.key - y.key
		}
		return int(x.at - y.at)
	})
	var delays []time.Duration
	for i := 1; i < len(all); i++ {
		g, prev := all[i], all[i-1]
		free := prev.at + window.Microseconds()
		if g.key == prev.key && g.queued && g.at >= free && g.started >= from && g.started <= to {
			delays = append(delays, time.Duration(g.started-free)*time.Microsecond)
		}
	}
	return delays
}
