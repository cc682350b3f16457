package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/redistest"
)

// Benchmarks across OS processes: the bench binary, started again with RATELTD_BENCH_WORKER
// set, runs TestBenchWorker as a worker node.

// TestBenchWorker is a worker when RATELTD_BENCH_WORKER is set, else nothing. Mode "fast":
// RATELTD_N requests on key "fast" from 16 goroutines, then "done <ns>". Mode "wait":
// RATELTD_N requests on key "hold" that wait in line; it prints "queued" once they are
// admitted and then waits to be killed. Mode "compare": one process of TestCompare's
// multi-process scenario (compareWorker).
func TestBenchWorker(t *testing.T) {
	mode := os.Getenv("RATELTD_BENCH_WORKER")
	if mode == "" {
		t.Skip("runs only as a worker process")
	}
	if mode == "compare" {
		compareWorker(t)
		return
	}
	n, _ := strconv.Atoi(os.Getenv("RATELTD_N"))
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("RATELTD_ADDR")})
	defer rdb.Close()
	c, err := rateltd.New(rateltd.Config{Redis: rdb, Prefix: os.Getenv("RATELTD_PREFIX"), PollInterval: 100 * time.Millisecond,
		Limits: map[string]rateltd.Limit{
			"fast": {Max: 50_000_000, Window: time.Second},
			"hold": {Max: 10, Window: time.Second, QueueTimeout: time.Minute, MaxQueue: 10_000},
		}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer c.Close()
	ctx := context.Background()
	switch mode {
	case "fast":
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					if _, err := c.Request(ctx, "fast", noop); err != nil {
						fmt.Println("error", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		fmt.Println("done", time.Since(start).Nanoseconds())
	case "wait":
		for range n {
			c.RequestAsync(ctx, "hold", noop)
		}
		for {
			st, err := c.Status(ctx, "hold")
			if err == nil && st.Queued >= n-10 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("queued")
		select {} // until killed
	}
}

// benchWorker starts one worker process and returns it with a scanner of its output.
func benchWorker(b *testing.B, srv *redistest.Instance, prefix, mode string, n int) (*exec.Cmd, *bufio.Scanner) {
	b.Helper()
	cmd, out, _ := startWorker(b, mode, "RATELTD_ADDR="+srv.Addr(), "RATELTD_PREFIX="+prefix, "RATELTD_N="+strconv.Itoa(n))
	return cmd, out
}

// startWorker starts this test binary again as a worker of mode, with env added to this
// process's environment; it returns the process, a scanner of its output and its input. The
// worker is killed at the test's cleanup.
func startWorker(t testing.TB, mode string, env ...string) (*exec.Cmd, *bufio.Scanner, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchWorker$", "-test.count=1", "-test.bench=^$")
	cmd.Env = append(append(os.Environ(), "RATELTD_BENCH_WORKER="+mode), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the benchmark dies
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewScanner(out), in
}

// BenchmarkFastPathProcesses: the fast path from three processes at once (16 goroutines
// each) on one key; req/s is the sum over the processes, measured from the first start to the
// last end.
func BenchmarkFastPathProcesses(b *testing.B) {
	srv := redistest.Server(b)
	prefix := srv.Prefix(b)
	const procs = 3
	per := max(b.N/procs, 1)
	var scanners []*bufio.Scanner
	start := time.Now()
	for range procs {
		_, sc := benchWorker(b, srv, prefix, "fast", per)
		scanners = append(scanners, sc)
	}
	var slowest time.Duration
	for i, sc := range scanners {
		done := false
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "done "); ok {
				ns, _ := strconv.ParseInt(v, 10, 64)
				slowest = max(slowest, time.Duration(ns))
				done = true
				break
			}
			if strings.HasPrefix(sc.Text(), "error") {
				b.Fatalf("worker %d: %s", i, sc.Text())
			}
		}
		if !done {
			b.Fatalf("worker %d ended without finishing", i)
		}
	}
	b.ReportMetric(float64(procs*per)/slowest.Seconds(), "req/s")
	b.ReportMetric(time.Since(start).Seconds(), "wall-s")
}

// BenchmarkDeadNodeHold: a process with 200 requests waiting on a key of 10/s is killed; the
// time until a request of another process, arriving at the kill, starts. Without dead-node
// detection it would wait behind the whole dead backlog (~20s).
func BenchmarkDeadNodeHold(b *testing.B) {
	srv := redistest.Server(b)
	var total time.Duration
	for range b.N {
		prefix := srv.Prefix(b)
		cmd, sc := benchWorker(b, srv, prefix, "wait", 200)
		for sc.Scan() && sc.Text() != "queued" {
		}
		c, err := rateltd.New(rateltd.Config{Redis: srv.Client(b), Prefix: prefix, PollInterval: 100 * time.Millisecond,
			Limits: map[string]rateltd.Limit{"hold": {Max: 10, Window: time.Second, QueueTimeout: time.Minute, MaxQueue: 10_000}}})
		if err != nil {
			b.Fatal(err)
		}
		cmd.Process.Kill()
		killed := time.Now()
		if _, err := c.Request(context.Background(), "hold", noop); err != nil {
			b.Fatal(err)
		}
		total += time.Since(killed)
		c.Close()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "hold-s")
}
