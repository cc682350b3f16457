package rateltd

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
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

	"github.com/rateltd/rateltd/config"
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
	switch os.Getenv("RATELTD_WORKER_MODE") {
	case "jobs":
		jobWorker()
		return
	case "commands":
		commandWorker()
		return
	case "slots":
		slotWorker()
		return
	case "costs":
		costWorker()
		return
	case "tenants":
		tenantWorker()
		return
	}
	n, _ := strconv.Atoi(os.Getenv("RATELTD_WORKER_N"))
	limit, _ := strconv.Atoi(os.Getenv("RATELTD_WORKER_MAX"))
	rdb := workerRedis()
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

// jobWorker runs durable jobs of handler "work" until it is killed: each prints "start <payload>
// <unix ns>", sleeps 300ms, prints "end <payload> <unix ns>" and returns the payload with
// "-done" and RATELTD_WORKER_TAG appended; a run whose ctx ends first (its lease lost) prints
// "end <payload> cancelled <unix ns>" and returns ctx's error.
func jobWorker() {
	rdb := workerRedis()
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
		say(fmt.Sprintf("start %s %d", p, time.Now().UnixNano()))
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			say(fmt.Sprintf("end %s cancelled %d", p, time.Now().UnixNano()))
			return nil, ctx.Err()
		}
		say(fmt.Sprintf("end %s %d", p, time.Now().UnixNano()))
		return append(p, "-done"+os.Getenv("RATELTD_WORKER_TAG")...), nil
	}); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	say("ready")
	select {} // until killed
}

// orderKey and orderLimit are the key of a command worker and its limit, the same on every node:
// one grant per 300ms, so that grants are far apart in time and their order is plain.
const orderKey = "order"

var orderLimit = Limit{Max: 1, Window: 300 * time.Millisecond, QueueTimeout: time.Minute}

// commandWorker makes requests on orderKey as told on stdin, one command a line:
// "req <label> <priority: low|normal|high|critical> <timeout>" starts one, "cancel <label>" cancels its ctx. It prints
// "ready" once its Client runs, "start <label> <unix ns>" when a request's fn starts, and when
// a Request returns "ok <label>" or "err <label> <timeout|cancelled|other> <waited> [error]".
// When stdin ends it waits for its requests and exits.
func commandWorker() {
	c, stop := workerClient(Config{Default: orderLimit})
	defer stop()
	say := lineWriter()
	say("ready")
	cancels := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 4 && f[0] == "req":
			label := f[1]
			p, err1 := config.ParsePriority(f[2])
			timeout, err2 := time.ParseDuration(f[3])
			if err := errors.Join(err1, err2); err != nil {
				say("error %q: %v", sc.Text(), err)
				continue
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancels[label] = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel()
				begin := time.Now()
				_, err := c.Request(ctx, orderKey, func(context.Context) (any, error) {
					say("start %s %d", label, time.Now().UnixNano())
					return nil, nil
				}, WithPriority(p), WithTimeout(timeout))
				waited := time.Since(begin)
				switch {
				case err == nil:
					say("ok %s", label)
				case errors.Is(err, ErrTimeout) && errors.Is(err, context.DeadlineExceeded):
					say("err %s timeout %v", label, waited)
				case errors.Is(err, context.Canceled):
					say("err %s cancelled %v", label, waited)
				default:
					say("err %s other %v %v", label, waited, err)
				}
			}()
		case len(f) == 2 && f[0] == "cancel" && cancels[f[1]] != nil:
			cancels[f[1]]()
		default:
			say("error unknown command %q", sc.Text())
		}
	}
	wg.Wait()
}

// worker is a running worker process.
type worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // a command worker reads its commands here
	grants []int64        // server µs
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

// send writes one command to a command worker.
func (w *worker) send(t *testing.T, format string, args ...any) {
	t.Helper()
	if _, err := fmt.Fprintf(w.stdin, format+"\n", args...); err != nil {
		t.Fatalf("command to worker: %v", err)
	}
}

// ends returns the lines of a command worker that report how request label ended, as fields.
func (w *worker) ends(label string) [][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ends [][]string
	for _, l := range w.lines {
		if f := strings.Fields(l); len(f) >= 2 && (f[0] == "ok" || f[0] == "err") && f[1] == label {
			ends = append(ends, f)
		}
	}
	return ends
}

// sharedRedis is a Redis that a test and its worker processes share: one server or a cluster.
type sharedRedis struct {
	env    string // how a worker finds it: RATELTD_WORKER_ADDR=… or RATELTD_WORKER_CLUSTER=…
	client redis.UniversalClient
	prefix string
}

// eachRedis runs f as parallel subtests on one Redis server ("redis") and on the three-master
// cluster ("cluster").
func eachRedis(t *testing.T, f func(t *testing.T, r sharedRedis)) {
	if os.Getenv("RATELTD_WORKER") != "" {
		t.Skip("a worker runs no tests")
	}
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Server(t)
		f(t, sharedRedis{env: "RATELTD_WORKER_ADDR=" + srv.Addr(), client: srv.Client(t), prefix: srv.Prefix(t)})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.SharedCluster(t)
		f(t, sharedRedis{env: "RATELTD_WORKER_CLUSTER=" + strings.Join(cl.Addrs(), ","), client: cl.Client(t), prefix: cl.Prefix(t)})
	})
}

// workerRedis is a worker's client of the Redis its test names.
// workerClient is a worker process's Client with cfg: on its Redis (workerRedis), under the
// test's prefix, polling every 100ms unless cfg says; stop closes it, then its Redis client. A
// Client that cannot start ends the process, printing "error".
func workerClient(cfg Config) (c *Client, stop func()) {
	rdb := workerRedis()
	cfg.Redis, cfg.Prefix = rdb, os.Getenv("RATELTD_WORKER_PREFIX")
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	c, err := New(cfg)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	return c, func() {
		c.Close()
		rdb.Close()
	}
}

// lineWriter returns a printf that writes whole lines, from any goroutine.
func lineWriter() func(format string, args ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
}

func workerRedis() redis.UniversalClient {
	if addrs := os.Getenv("RATELTD_WORKER_CLUSTER"); addrs != "" {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	}
	return redis.NewClient(&redis.Options{Addr: os.Getenv("RATELTD_WORKER_ADDR")})
}

// startWorkers starts n worker processes on r, each making perWorker requests.
func startWorkers(t *testing.T, r sharedRedis, n, perWorker, max int) []*worker {
	t.Helper()
	return startProcesses(t, n, r.env, "RATELTD_WORKER_PREFIX="+r.prefix,
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
		in, err := cmd.StdinPipe() // closed by Wait once the process exits
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w := &worker{cmd: cmd, stdin: in, done: make(chan struct{})}
		go func() {
			defer close(w.done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				w.mu.Lock()
				w.lines = append(w.lines, line)
				if v, ok := strings.CutPrefix(line, "grant "); ok {
					at, _ := strconv.ParseInt(v, 10, 64)
					w.grants = append(w.grants, at)
				} else if strings.HasPrefix(line, "error") {
					w.errs = append(w.errs, line)
				}
				w.mu.Unlock()
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
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		const max, per, procs = 100, 150, 3
		ws := startWorkers(t, r, procs, per, max)
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
		checkWindows(t, grants, time.Second, max)
		// 450 at 100/s: the last grant at least 4 windows after the first, and near that.
		ideal := time.Duration(procs*per/max) * time.Second
		span := time.Duration(grants[len(grants)-1]-grants[0]) * time.Microsecond
		if span < ideal || span > ideal+ideal/10 {
			t.Fatalf("grants spread over %v; ideal %v (+10%% allowed)", span, ideal)
		}
	})
}

// TestDeadNodeKilled: a process killed (SIGKILL) with 190 requests waiting stops holding up the
// line once its heartbeat lapses: its tickets are dropped, the grants made for it refunded,
// and another process's requests are served at the full limit — not after the dead backlog.
func TestDeadNodeKilled(t *testing.T) {
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		prefix := r.prefix
		const max = 10 // per second
		w := startWorkers(t, r, 1, 200, max)[0]
		c, err := New(Config{Redis: r.client, Prefix: prefix, PollInterval: 100 * time.Millisecond,
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
	})
}

// TestDurableJobsSurviveKill: three processes run durable jobs; one is killed (SIGKILL) while
// running some. Every job completes at least once, every Wait gets its result, the jobs the
// dead process held are run again by the others once their lease lapses, and a node started
// afterwards still reads the results.
func TestDurableJobsSurviveKill(t *testing.T) {
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		prefix := r.prefix
		ws := startProcesses(t, 3, "RATELTD_WORKER_MODE=jobs", r.env, "RATELTD_WORKER_PREFIX="+prefix)
		for i, w := range ws {
			eventually(t, 20*time.Second, fmt.Sprintf("worker %d ready", i), func() bool { return w.said("ready") == 1 })
		}
		cfg := Config{Redis: r.client, Prefix: prefix, PollInterval: 100 * time.Millisecond,
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
					ran[strings.Fields(p)[0]]++
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
	})
}

// TestOrderAndDeadlinesAcrossProcesses: three processes wait in one paused key's line with mixed
// priorities, one request at a time, so the order of arrival across them is known. One request
// that times out while waiting ends with ErrTimeout at its deadline, one cancelled from the
// middle of the line ends with context.Canceled, and the ticket of each is out of the line in
// Redis by the time its caller has the error. Once the key resumes, the others run strictly by
// priority, first come first served within one, whichever process asked; one at the back times
// out while the line drains. Every request has exactly one outcome, reported by its own
// process, and only those that ran were granted.
func TestOrderAndDeadlinesAcrossProcesses(t *testing.T) {
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		prefix := r.prefix
		c, err := New(Config{Redis: r.client, Prefix: prefix, PollInterval: 100 * time.Millisecond, Default: orderLimit})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		if err := c.Pause(ctx, orderKey); err != nil {
			t.Fatal(err)
		}
		ws := startProcesses(t, 3, "RATELTD_WORKER_MODE=commands", r.env, "RATELTD_WORKER_PREFIX="+prefix)
		t.Cleanup(func() {
			if t.Failed() {
				for i, w := range ws {
					w.mu.Lock()
					t.Logf("worker %d said:\n%s", i, strings.Join(w.lines, "\n"))
					w.mu.Unlock()
				}
			}
		})
		for i, w := range ws {
			eventually(t, 20*time.Second, fmt.Sprintf("worker %d ready", i), func() bool { return w.said("ready") == 1 })
		}

		type request struct {
			label   string
			worker  int
			prio    Priority
			timeout time.Duration
			end     string // how it must end: "ok", "timeout" or "cancelled"
		}
		var reqs []request
		queued := 0
		// send has worker make a request and waits until it is in line, behind those sent before.
		send := func(worker int, label string, p Priority, timeout time.Duration, end string) {
			t.Helper()
			ws[worker].send(t, "req %s %s %v", label, p, timeout)
			reqs = append(reqs, request{label, worker, p, timeout, end})
			queued++
			waitQueued(t, c, orderKey, queued)
		}
		// left waits until worker reports how request label ended, and checks that its ticket had
		// left the line by then.
		left := func(worker int, label string) {
			t.Helper()
			eventually(t, 5*time.Second, label+" ended", func() bool { return len(ws[worker].ends(label)) > 0 })
			queued--
			if st := status(t, c, orderKey); st.Queued != queued {
				t.Fatalf("%s ended, yet %d requests wait; want %d", label, st.Queued, queued)
			}
		}
		const long = time.Minute
		send(0, "n1", PriorityNormal, long, "ok")
		send(1, "l1", PriorityLow, long, "ok")
		send(2, "h1", PriorityHigh, long, "ok")
		send(0, "x", PriorityHigh, long, "cancelled") // cancelled below, from the middle of the line
		send(1, "c1", PriorityCritical, long, "ok")
		send(2, "n2", PriorityNormal, long, "ok")
		send(0, "t1", PriorityNormal, 300*time.Millisecond, "timeout") // the key stays paused past its deadline
		left(0, "t1")
		send(1, "h2", PriorityHigh, long, "ok")
		send(2, "l2", PriorityLow, long, "ok")
		ws[0].send(t, "cancel x")
		left(0, "x")
		send(0, "c2", PriorityCritical, long, "ok")
		send(1, "n3", PriorityNormal, long, "ok")
		send(2, "h3", PriorityHigh, long, "ok")
		// Behind ten, one per 300ms: its turn cannot come before 3s after the resume, past its deadline.
		send(0, "t2", PriorityLow, time.Second, "timeout")
		if err := c.Resume(ctx, orderKey); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "every request ended", func() bool {
			for _, r := range reqs {
				if len(ws[r.worker].ends(r.label)) == 0 {
					return false
				}
			}
			return true
		})
		// With stdin closed a worker ends once its requests have: its output is then complete.
		for i, w := range ws {
			w.stdin.Close()
			select {
			case <-w.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("worker %d did not exit at the end of its commands", i)
			}
		}

		from := map[string]int{}
		for _, r := range reqs {
			from[r.label] = r.worker
		}
		starts := map[string][]int64{} // unix ns
		for i, w := range ws {
			if len(w.errs) > 0 {
				t.Fatalf("worker %d: %v", i, w.errs)
			}
			for _, l := range w.lines {
				f := strings.Fields(l)
				if len(f) < 2 {
					continue
				}
				if j, ok := from[f[1]]; ok && j != i {
					t.Errorf("worker %d said %q about a request of worker %d", i, l, j)
				}
				if f[0] == "start" && len(f) == 3 {
					at, err := strconv.ParseInt(f[2], 10, 64)
					if err != nil {
						t.Fatalf("worker %d: %q: %v", i, l, err)
					}
					starts[f[1]] = append(starts[f[1]], at)
				}
			}
		}
		var ran []string
		for _, r := range reqs {
			ends := ws[r.worker].ends(r.label)
			if len(ends) != 1 {
				t.Errorf("%s: outcomes %v; want exactly one", r.label, ends)
				continue
			}
			got := ends[0][0]
			if got == "err" && len(ends[0]) >= 4 {
				got = ends[0][2]
			}
			if got != r.end {
				t.Errorf("%s ended %v; want %s", r.label, ends[0], r.end)
			}
			switch n := len(starts[r.label]); {
			case got == "ok" && n == 1:
				ran = append(ran, r.label)
			case got == "ok" || n != 0:
				t.Errorf("%s ended %v, its fn started %d times", r.label, ends[0], n)
			}
			if r.end == "timeout" && got == "timeout" {
				waited, err := time.ParseDuration(ends[0][3])
				if err != nil || waited < r.timeout || waited > r.timeout+2*time.Second {
					t.Errorf("%s timed out after %v (%v); want about its timeout, %v", r.label, ends[0][3], err, r.timeout)
				}
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		slices.SortFunc(ran, func(a, b string) int { return cmp.Compare(starts[a][0], starts[b][0]) })
		var want []string // by priority, then as they came: c1 c2 h1 h2 h3 n1 n2 n3 l1 l2
		for p := PriorityCritical; p >= PriorityLow; p-- {
			for _, r := range reqs {
				if r.prio == p && r.end == "ok" {
					want = append(want, r.label)
				}
			}
		}
		if fmt.Sprint(ran) != fmt.Sprint(want) {
			t.Fatalf("order %v, want %v", ran, want)
		}
		var gaps []time.Duration
		for i := 1; i < len(ran); i++ {
			gaps = append(gaps, time.Duration(starts[ran[i]][0]-starts[ran[i-1]][0]).Round(time.Millisecond))
		}
		t.Logf("ran %v, %v apart", ran, gaps)

		st := status(t, c, orderKey)
		if n := st.Counters; st.Queued != 0 || st.Unclaimed != 0 || n.Queued != int64(len(reqs)) || n.Granted != int64(len(ran)) ||
			n.Refunded != 0 || n.Cancelled+n.Expired != int64(len(reqs)-len(ran)) {
			t.Fatalf("status: %d waiting, %d unclaimed, counters %+v; want %d queued, %d granted, %d cancelled or expired, none refunded",
				st.Queued, st.Unclaimed, n, len(reqs), len(ran), len(reqs)-len(ran))
		}
	})
}
