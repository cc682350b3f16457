package rateltd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/processor"
)

// The tests here run nodes as separate OS processes: the test binary, started again with
// RATELTD_WORKER set, runs TestWorkerProcess as a worker instead of a test.

// TestWorkerProcess is a worker when RATELTD_WORKER is set (see startWorkers), else nothing.
// It makes RATELTD_WORKER_N requests on key "shared" (limit RATELTD_WORKER_MAX per second)
// and prints one line per grant: "grant <server µs>".
func TestWorkerProcess(t *testing.T) {
	if os.Getenv("RATELTD_WORKER") == "" {
		t.Skip("runs only as a worker process")
	}
	if os.Getenv("RATELTD_WORKER_MODE") == "jobs" {
		jobWorker()
		return
	}
	n, _ := strconv.Atoi(os.Getenv("RATELTD_WORKER_N"))
	limit, _ := strconv.Atoi(os.Getenv("RATELTD_WORKER_MAX"))
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("RATELTD_WORKER_ADDR")})
	defer rdb.Close()
	poll, _ := time.ParseDuration(os.Getenv("RATELTD_WORKER_POLL")) // 0: the default
	c, err := New(Config{Redis: rdb, Prefix: os.Getenv("RATELTD_WORKER_PREFIX"), PollInterval: poll,
		Default: Limit{Max: limit, Window: time.Second, QueueTimeout: time.Minute}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer c.Close()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := c.node.Acquire(context.Background(), processor.Request{Key: "shared", Priority: PriorityNormal})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fmt.Println("error", err)
				return
			}
			fmt.Println("grant", g.At)
		}()
	}
	wg.Wait()
}

// jobWorker runs durable jobs of handler "work" until it is killed: each prints "start <payload>",
// sleeps 300ms, prints "end <payload>" and returns the payload with "-done" appended.
func jobWorker() {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("RATELTD_WORKER_ADDR")})
	c, err := New(Config{Redis: rdb, Prefix: os.Getenv("RATELTD_WORKER_PREFIX"), PollInterval: 100 * time.Millisecond,
		LeaseTimeout: time.Second, Workers: 4, Default: Limit{Max: 50, Window: time.Second, QueueTimeout: time.Minute}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	say := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Println(s)
	}
	if err := c.Handle("work", func(ctx context.Context, p []byte) ([]byte, error) {
		say("start " + string(p))
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		say("end " + string(p))
		return append(p, "-done"...), nil
	}); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	say("ready")
	select {} // until killed
}

// worker is a running worker process.
type worker struct {
	cmd    *exec.Cmd
	grants []int64 // server µs
	errs   []string
	done   chan struct{}

	mu    sync.Mutex
	lines []string // of a job worker
}

// said counts the lines of a job worker that start with prefix.
func (w *worker) said(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, l := range w.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// startWorkers starts n worker processes on srv, each making perWorker requests.
func startWorkers(t *testing.T, srv *redistest.Instance, prefix string, n, perWorker, max int) []*worker {
	t.Helper()
	return startProcesses(t, n, "RATELTD_WORKER_ADDR="+srv.Addr(), "RATELTD_WORKER_PREFIX="+prefix,
		"RATELTD_WORKER_N="+strconv.Itoa(perWorker), "RATELTD_WORKER_MAX="+strconv.Itoa(max), "RATELTD_WORKER_POLL=100ms")
}

// startProcesses starts n worker processes with env added to this process's.
func startProcesses(t *testing.T, n int, env ...string) []*worker {
	t.Helper()
	var ws []*worker
	for range n {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerProcess$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), "RATELTD_WORKER=1"), env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the test dies
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w := &worker{cmd: cmd, done: make(chan struct{})}
		go func() {
			defer close(w.done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				w.mu.Lock()
				w.lines = append(w.lines, line)
				w.mu.Unlock()
				if v, ok := strings.CutPrefix(line, "grant "); ok {
					at, _ := strconv.ParseInt(v, 10, 64)
					w.grants = append(w.grants, at)
				} else if strings.HasPrefix(line, "error") {
					w.errs = append(w.errs, line)
				}
			}
			cmd.Wait()
		}()
		ws = append(ws, w)
	}
	t.Cleanup(func() {
		for _, w := range ws {
			w.cmd.Process.Kill()
			<-w.done
		}
	})
	return ws
}

// TestG1AcrossProcesses: three processes × 150 requests share one key of 100 per second: no
// second of Redis time holds more than 100 grants, and all are served near the ideal 4s (the
// 401st grant is 4 windows after the first).
func TestG1AcrossProcesses(t *testing.T) {
	if os.Getenv("RATELTD_WORKER") != "" {
		t.Skip("a worker runs no tests")
	}
	t.Parallel()
	srv := redistest.Server(t)
	const max, per, procs = 100, 150, 3
	ws := startWorkers(t, srv, srv.Prefix(t), procs, per, max)
	var grants []int64
	for i, w := range ws {
		select {
		case <-w.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("worker %d did not finish", i)
		}
		if len(w.errs) > 0 || len(w.grants) != per {
			t.Fatalf("worker %d: %d grants, errors %v", i, len(w.grants), w.errs)
		}
		grants = append(grants, w.grants...)
	}
	slices.Sort(grants)
	for i := range grants {
		n := 0
		for j := i; j < len(grants) && grants[j]-grants[i] < time.Second.Microseconds(); j++ {
			n++
		}
		if n > max {
			t.Fatalf("%d grants within 1s of Redis time from grant %d, limit %d", n, i, max)
		}
	}
	// 450 at 100/s: the last grant at least 4 windows after the first, and near that.
	ideal := time.Duration(procs*per/max) * time.Second
	span := time.Duration(grants[len(grants)-1]-grants[0]) * time.Microsecond
	if span < ideal || span > ideal+ideal/10 {
		t.Fatalf("grants spread over %v; ideal %v (+10%% allowed)", span, ideal)
	}
}

// TestDeadNodeKilled: a process killed (SIGKILL) with 190 requests waiting stops holding up the
// line once its heartbeat lapses: its tickets are dropped, the grants made for it refunded,
// and another process's requests are served at the full limit — not after the dead backlog.
func TestDeadNodeKilled(t *testing.T) {
	if os.Getenv("RATELTD_WORKER") != "" {
		t.Skip("a worker runs no tests")
	}
	t.Parallel()
	srv := redistest.Server(t)
	prefix := srv.Prefix(t)
	const max = 10 // per second
	w := startWorkers(t, srv, prefix, 1, 200, max)[0]
	c, err := New(Config{Redis: srv.Client(t), Prefix: prefix, PollInterval: 100 * time.Millisecond,
		Default: Limit{Max: max, Window: time.Second, QueueTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, 20*time.Second, "the worker's requests waiting", func() bool { return status(t, c, "shared").Queued >= 180 })
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Request(context.Background(), "shared", noop, WithTimeout(time.Minute)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Behind the dead backlog, 20 more at 10/s would take 19s and more; with the backlog
	// dropped once the heartbeat (3s) lapses, they take the detection and 2s.
	if took := time.Since(killed); took > 10*time.Second {
		t.Fatalf("20 requests took %v after the kill: the dead node's tickets held up the line", took)
	}
	st := status(t, c, "shared")
	if st.Counters.Abandoned == 0 || st.Counters.Refunded == 0 || st.Queued != 0 {
		t.Fatalf("after the kill: abandoned %d, refunded %d, queued %d", st.Counters.Abandoned, st.Counters.Refunded, st.Queued)
	}
}

// TestDurableJobsSurviveKill: three processes run durable jobs; one is killed (SIGKILL) while
// running some. Every job completes at least once, every Wait gets its result, the jobs the
// dead process held are run again by the others once their lease lapses, and a node started
// afterwards still reads the results.
func TestDurableJobsSurviveKill(t *testing.T) {
	if os.Getenv("RATELTD_WORKER") != "" {
		t.Skip("a worker runs no tests")
	}
	t.Parallel()
	srv := redistest.Server(t)
	prefix := srv.Prefix(t)
	ws := startProcesses(t, 3, "RATELTD_WORKER_MODE=jobs", "RATELTD_WORKER_ADDR="+srv.Addr(), "RATELTD_WORKER_PREFIX="+prefix)
	for i, w := range ws {
		eventually(t, 20*time.Second, fmt.Sprintf("worker %d ready", i), func() bool { return w.said("ready") == 1 })
	}
	cfg := Config{Redis: srv.Client(t), Prefix: prefix, PollInterval: 100 * time.Millisecond,
		Default: Limit{Max: 50, Window: time.Second, QueueTimeout: time.Minute}}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const jobs = 60
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = enqueue(t, c, "jobs", "work", "j"+strconv.Itoa(i))
	}
	victim := ws[0]
	eventually(t, 20*time.Second, "the victim in the middle of jobs", func() bool {
		return victim.said("start") >= 2 && victim.said("start") > victim.said("end")
	})
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	cut := victim.said("start") - victim.said("end")

	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			got, err := c.Wait(ctx, id)
			if want := "j" + strconv.Itoa(i) + "-done"; err != nil || string(got) != want {
				t.Errorf("Wait(%s) = %q, %v; want %q", id, got, err, want)
			}
		}()
	}
	wg.Wait()
	ran := map[string]int{}
	for _, w := range ws {
		w.mu.Lock()
		for _, l := range w.lines {
			if p, ok := strings.CutPrefix(l, "end "); ok {
				ran[p]++
			}
		}
		w.mu.Unlock()
	}
	for i := range jobs {
		if ran["j"+strconv.Itoa(i)] == 0 {
			t.Errorf("job j%d never completed", i)
		}
	}
	st := status(t, c, "jobs")
	if st.Counters.Reclaimed < int64(cut) || st.Jobs != 0 || st.Counters.Succeeded != jobs {
		t.Fatalf("status %+v: want %d leases taken back, no job left, %d successes", st, cut, jobs)
	}
	later, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	if got, err := wait(t, later, ids[0]); err != nil || string(got) != "j0-done" {
		t.Fatalf("Wait from a node started afterwards = %q, %v", got, err)
	}
	t.Logf("killed with %d jobs running; %d leases taken back", cut, st.Counters.Reclaimed)
}
