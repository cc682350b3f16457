package rateltd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rateltd/rateltd/processor"
)

// Costs and several rates (G13) and concurrency caps (G14) across OS processes; see
// process_test.go for the worker processes.

// costWorker makes RATELTD_WORKER_N requests of random cost 1–20 on key "costs" (10 requests
// and 60 units per 400ms, sliding log), and prints "grant <server µs> <cost>" for each.
func costWorker() {
	n, _ := strconv.Atoi(os.Getenv("RATELTD_WORKER_N"))
	seed, _ := strconv.ParseUint(os.Getenv("RATELTD_WORKER_SEED"), 10, 64)
	rdb := workerRedis()
	defer rdb.Close()
	c, err := New(Config{Redis: rdb, Prefix: os.Getenv("RATELTD_WORKER_PREFIX"), PollInterval: 100 * time.Millisecond,
		Default: costLimit})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(seed, 2))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		cost := 1 + rng.Int64N(20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := c.node.Acquire(context.Background(), processor.Request{Key: "costs", Cost: cost})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fmt.Println("error", err)
				return
			}
			fmt.Println("grant", g.At, g.Cost)
		}()
	}
	wg.Wait()
}

// costLimit is the limit of costWorker's key.
var costLimit = Limit{Max: 10, Window: 400 * time.Millisecond, QueueTimeout: time.Minute,
	Also: []Rate{{Max: 60, Window: 400 * time.Millisecond, Units: true}}}

// TestG13AcrossProcesses: three processes make 20 requests each of random cost on a key of 10
// requests and 60 units per 400ms: no 400ms of Redis time holds more than 10 grants or 60 units.
func TestG13AcrossProcesses(t *testing.T) {
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		var ws []*worker
		for i := range 3 {
			ws = append(ws, startProcesses(t, 1, r.env, "RATELTD_WORKER_MODE=costs", "RATELTD_WORKER_PREFIX="+r.prefix,
				"RATELTD_WORKER_N=20", "RATELTD_WORKER_SEED="+strconv.Itoa(i+1))...)
		}
		var grants []costGrant
		for i, w := range ws {
			select {
			case <-w.done:
			case <-time.After(60 * time.Second):
				t.Fatalf("worker %d did not finish", i)
			}
			if len(w.errs) > 0 {
				t.Fatalf("worker %d: %v", i, w.errs)
			}
			for _, f := range w.fields("grant ") {
				at, _ := strconv.ParseInt(f[0], 10, 64)
				cost, _ := strconv.ParseInt(f[1], 10, 64)
				grants = append(grants, costGrant{at, cost})
			}
		}
		if len(grants) != 60 {
			t.Fatalf("%d grants, want 60", len(grants))
		}
		slices.SortFunc(grants, func(a, b costGrant) int { return int(a.at - b.at) })
		for i := range grants {
			if n, u := sumWithin(grants, i, costLimit.Window); n > 10 || u > 60 {
				t.Fatalf("%d requests, %d units within %v from grant %d", n, u, costLimit.Window, i)
			}
		}
	})
}

// fields returns the fields after prefix of a worker's lines that start with it.
func (w *worker) fields(prefix string) [][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out [][]string
	for _, l := range w.lines {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			out = append(out, strings.Fields(v))
		}
	}
	return out
}

// slotWorker makes RATELTD_WORKER_N requests on key "slots", capped at RATELTD_WORKER_MAX
// running, each holding its slot RATELTD_WORKER_HOLD; it prints "start <unix ns>" and
// "end <unix ns>" around each.
func slotWorker() {
	n, _ := strconv.Atoi(os.Getenv("RATELTD_WORKER_N"))
	capN, _ := strconv.Atoi(os.Getenv("RATELTD_WORKER_MAX"))
	hold, _ := time.ParseDuration(os.Getenv("RATELTD_WORKER_HOLD"))
	c, stop := workerClient(Config{Default: Limit{Concurrency: capN, QueueTimeout: time.Minute}})
	defer stop()
	say := lineWriter()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Request(context.Background(), "slots", func(context.Context) (any, error) {
				say("start %d", time.Now().UnixNano())
				time.Sleep(hold)
				say("end %d", time.Now().UnixNano())
				return nil, nil
			})
			if err != nil {
				say("error %v", err)
			}
		}()
	}
	wg.Wait()
}

// startSlotWorkers starts n slot workers on r, each making perWorker requests of hold, capped
// at capN running.
func startSlotWorkers(t *testing.T, r sharedRedis, n, perWorker, capN int, hold time.Duration) []*worker {
	t.Helper()
	return startProcesses(t, n, r.env, "RATELTD_WORKER_MODE=slots", "RATELTD_WORKER_PREFIX="+r.prefix,
		"RATELTD_WORKER_N="+strconv.Itoa(perWorker), "RATELTD_WORKER_MAX="+strconv.Itoa(capN), "RATELTD_WORKER_HOLD="+hold.String())
}

// stamps returns the times a worker printed after prefix ("start " or "end "), unix ns.
func (w *worker) stamps(prefix string) []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int64
	for _, l := range w.lines {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			at, _ := strconv.ParseInt(v, 10, 64)
			out = append(out, at)
		}
	}
	return out
}

// TestG14AcrossProcesses: three processes run 10 requests of 50ms each on a key capped at 4:
// counted over the processes' starts and ends (one host's clock), never more than 4 run at
// once, and the cap is used.
func TestG14AcrossProcesses(t *testing.T) {
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		ws := startSlotWorkers(t, r, 3, 10, 4, 50*time.Millisecond)
		type edge struct {
			at   int64
			step int
		}
		var edges []edge
		for _, w := range ws {
			<-w.done
			if len(w.errs) > 0 {
				t.Fatalf("worker: %v", w.errs)
			}
			for _, at := range w.stamps("start ") {
				edges = append(edges, edge{at, +1})
			}
			for _, at := range w.stamps("end ") {
				edges = append(edges, edge{at, -1})
			}
		}
		if len(edges) != 60 {
			t.Fatalf("%d starts and ends, want 60", len(edges))
		}
		// An end and a start at the same instant: the end first (its slot was freed before).
		slices.SortFunc(edges, func(a, b edge) int {
			if a.at != b.at {
				return int(a.at - b.at)
			}
			return a.step - b.step
		})
		running, most := 0, 0
		for _, e := range edges {
			running += e.step
			most = max(most, running)
		}
		if most > 4 || most < 2 {
			t.Fatalf("at most %d ran at once across the processes, want at most 4 (and the cap used)", most)
		}
	})
}

// TestG14SlotsOfKilledNode: a process holds all 3 slots of a key (its calls run for a minute)
// and is killed (SIGKILL). Three requests of this process, waiting meanwhile, do not start
// while it lives, and start once its heartbeat (3s) lapses with the slots' lease, within 10s.
func TestG14SlotsOfKilledNode(t *testing.T) {
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		w := startSlotWorkers(t, r, 1, 3, 3, time.Minute)[0]
		c, err := New(Config{Redis: r.client, Prefix: r.prefix, PollInterval: 100 * time.Millisecond,
			Default: Limit{Concurrency: 3, QueueTimeout: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		eventually(t, 20*time.Second, "the worker holding 3 slots", func() bool { return len(w.stamps("start ")) == 3 })
		var started atomic.Int64
		var results []<-chan Result
		for range 3 {
			results = append(results, c.RequestAsync(context.Background(), "slots", func(context.Context) (any, error) {
				started.Add(1)
				return nil, nil
			}))
		}
		waitQueued(t, c, "slots", 3)
		time.Sleep(500 * time.Millisecond)
		if n := started.Load(); n != 0 {
			t.Fatalf("%d started while the worker held every slot", n)
		}
		if st := status(t, c, "slots"); st.InFlight != 3 {
			t.Fatalf("in flight before the kill: %d, want 3", st.InFlight)
		}
		if err := w.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		for _, ch := range results {
			if res := <-ch; res.Err != nil {
				t.Fatal(res.Err)
			}
		}
		if took := time.Since(killed); took > 10*time.Second {
			t.Fatalf("the dead node's slots came back %v after the kill", took)
		}
	})
}
