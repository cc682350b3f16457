package rateltd

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestChaosStopped: three worker processes run durable jobs; one is stopped (SIGSTOP) in the
// middle of some for 4s — longer than its heartbeat (3s) and its lease (1s) — then continued.
// While it sleeps, the others take its jobs back and run them; every Wait gets its result.
// When it wakes, its handlers that were cut off finish, but it records nothing over the
// others' work (fencing): every result is the one of the run that held the lease, each job
// succeeded once in the counters, and the woken process starts no job that another already ran.
func TestChaosStopped(t *testing.T) {
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		var ws []*worker
		for i := range 3 {
			ws = append(ws, startProcesses(t, 1, "RATELTD_WORKER_MODE=jobs", r.env, "RATELTD_WORKER_PREFIX="+r.prefix,
				"RATELTD_WORKER_TAG=-w"+strconv.Itoa(i))...)
		}
		for i, w := range ws {
			eventually(t, 20*time.Second, fmt.Sprintf("worker %d ready", i), func() bool { return w.said("ready") == 1 })
		}
		c, err := New(Config{Redis: r.client, Prefix: r.prefix, PollInterval: 100 * time.Millisecond,
			Default: Limit{Max: 50, Window: time.Second, QueueTimeout: time.Minute}})
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
		if err := syscall.Kill(victim.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		continued := false
		cont := func() {
			if !continued {
				continued = true
				syscall.Kill(victim.cmd.Process.Pid, syscall.SIGCONT)
			}
		}
		defer cont()

		// While the victim sleeps, every job's result comes, from the two others.
		results := make([]string, jobs)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = mustWait(t, c, id, "j"+strconv.Itoa(i))
			}()
		}
		wg.Wait()
		served := time.Since(stopped)
		// Hold it stopped 4s in all, so that its heartbeat lapsed whatever the jobs took.
		time.Sleep(time.Until(stopped.Add(4 * time.Second))) // the fault's length
		// A line stamped after this was said after the victim woke.
		woke := time.Now()
		cont()
		// Its cut-off handlers end 300ms after they started, or at once when the renewal on
		// waking finds their lease lost (a handler stopped before it began its sleep).
		eventually(t, 10*time.Second, "the victim's cut-off handlers ended", func() bool {
			return victim.said("end") >= victim.said("start")
		})
		time.Sleep(500 * time.Millisecond) // room for a FinishJob the fence must refuse

		// Lines are told apart by their stamps, not by when this process read them: a line said
		// just before the stop may still be in the pipe then.
		var before, after []string
		victim.mu.Lock()
		for _, l := range victim.lines {
			f := strings.Fields(l)
			if at, err := strconv.ParseInt(f[len(f)-1], 10, 64); err == nil && at >= woke.UnixNano() {
				after = append(after, l)
			} else {
				before = append(before, l)
			}
		}
		victim.mu.Unlock()
		cut := countPrefix(before, "start") - countPrefix(before, "end")
		for i, id := range ids {
			got := mustWait(t, c, id, "j"+strconv.Itoa(i))
			if got != results[i] {
				t.Errorf("job j%d: result %q while the victim slept, %q after it woke: its late run was recorded", i, results[i], got)
			}
		}
		for _, l := range after {
			if p, ok := strings.CutPrefix(l, "start "); ok {
				t.Errorf("the woken victim started job %s, which the others had run", strings.Fields(p)[0])
			}
		}
		st := status(t, c, "jobs")
		if st.Counters.Succeeded != jobs || st.Counters.Reclaimed < int64(cut) || st.Jobs != 0 {
			t.Fatalf("counters %+v, %d jobs left; want %d succeeded, at least %d leases taken back", st.Counters, st.Jobs, jobs, cut)
		}
		t.Logf("stopped with %d jobs running; all %d served %v after the stop; woke %v after it; %d leases taken back",
			cut, jobs, served.Round(time.Millisecond), woke.Sub(stopped).Round(time.Millisecond), st.Counters.Reclaimed)
	})
}

// mustWait waits up to 30s for job id, whose payload is p, and returns its result, which must
// be p's.
func mustWait(t *testing.T, c *Client, id, p string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := c.Wait(ctx, id)
	if err != nil || !strings.HasPrefix(string(got), p+"-done") {
		t.Errorf("Wait(%s) = %q, %v; want %s-done from some worker", id, got, err, p)
	}
	return string(got)
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestChaosStoppedRequests: a worker process waits in line on a key of 20 a second; it is
// stopped (SIGSTOP) for 4s — longer than its heartbeat (3s) — then continued, while a second
// worker, started behind it, makes its own requests. The second's processor grants the
// sleeper's tickets at the head of the line, which nobody claims; once the sleeper's heartbeat
// lapses those grants are given back and its tickets leave the line. Woken, the sleeper finds
// its heartbeat lapsed and puts its waiting requests back in line: every request of both ends
// with a grant, the sleeper runs nothing on a grant that was given back, and the key is never
// over its limit (grant times from Redis).
func TestChaosStoppedRequests(t *testing.T) {
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		const perWorker, max = 60, 20
		victim := startWorkers(t, r, 1, perWorker, max)[0]
		eventually(t, 20*time.Second, "the victim served and waiting", func() bool {
			victim.mu.Lock()
			defer victim.mu.Unlock()
			return len(victim.grants) >= 25 // its first second's 20, and its own grant steps'
		})
		if err := syscall.Kill(victim.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		ws := []*worker{victim, startWorkers(t, r, 1, perWorker, max)[0]}
		time.Sleep(4 * time.Second) // the fault's length
		if err := syscall.Kill(victim.cmd.Process.Pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		woke := time.Now()
		var all []int64
		for i, w := range ws {
			select {
			case <-w.done:
			case <-time.After(30 * time.Second):
				w.mu.Lock()
				t.Fatalf("worker %d not done 30s after the victim woke: %d grants of %d, errors %v",
					i, len(w.grants), perWorker, w.errs)
			}
			w.mu.Lock()
			if len(w.errs) > 0 || len(w.grants) != perWorker {
				t.Errorf("worker %d: %d grants of %d, errors %v", i, len(w.grants), perWorker, w.errs)
			}
			all = append(all, w.grants...)
			w.mu.Unlock()
		}
		slices.Sort(all)
		checkWindows(t, all, time.Second, max)
		c, err := New(Config{Redis: r.client, Prefix: r.prefix, Default: Limit{Max: max, Window: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		st := status(t, c, "shared")
		if st.Counters.Abandoned == 0 && st.Counters.Refunded == 0 {
			t.Errorf("counters %+v: nothing of the sleeper's was dropped or given back; the fault did not bite", st.Counters)
		}
		t.Logf("stopped %v; every request of both served %v after the victim woke; abandoned %d, refunded %d",
			woke.Sub(stopped).Round(time.Millisecond), time.Since(woke).Round(time.Millisecond), st.Counters.Abandoned, st.Counters.Refunded)
	})
}
