package rateltd

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrency caps across OS processes (G14); see process_test.go for the worker processes.

// slotWorker makes RATELTD_WORKER_N requests on key "slots", capped at RATELTD_WORKER_MAX
// running, each holding its slot RATELTD_WORKER_HOLD; it prints "start <unix ns>" and
// "end <unix ns>" around each.
func slotWorker() {
	n, _ := strconv.Atoi(os.Getenv("RATELTD_WORKER_N"))
	capN, _ := strconv.Atoi(os.Getenv("RATELTD_WORKER_MAX"))
	hold, _ := time.ParseDuration(os.Getenv("RATELTD_WORKER_HOLD"))
	rdb := workerRedis()
	defer rdb.Close()
	c, err := New(Config{Redis: rdb, Prefix: os.Getenv("RATELTD_WORKER_PREFIX"), PollInterval: 100 * time.Millisecond,
		Default: Limit{Concurrency: capN, QueueTimeout: time.Minute}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer c.Close()
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
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
