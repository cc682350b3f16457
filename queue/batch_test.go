package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/faultproxy"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/queue"
)

// TestAdmitBatcherSurvivesTimeouts: callers that stop waiting at their deadline, in the middle
// of flights and lead handoffs, leave the batcher able to serve everyone after them.
func TestAdmitBatcherSurvivesTimeouts(t *testing.T) {
	srv := redistest.Server(t)
	r := queue.NewRedis(srv.Client(t), srv.Prefix(t), 4)
	if err := r.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := params(config.Limit{Max: 1_000_000, Window: time.Minute})
	for round := range 5 {
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tk, raw := ticket(t, r, "k", nodeA, config.PriorityNormal)
				// Deadlines from 1µs to ~2ms: many pass while their admit waits or flies.
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+i*10)*time.Microsecond)
				defer cancel()
				r.Admit(ctx, p, tk, raw) // either answer is fine; the batcher must carry on
			}()
		}
		wg.Wait()
		tk, raw := ticket(t, r, "k", nodeA, config.PriorityNormal)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rep, err := r.Admit(ctx, p, tk, raw)
		cancel()
		if err != nil || rep.Outcome != queue.Granted {
			t.Fatalf("round %d: an admit after the timeouts: %+v, %v", round, rep, err)
		}
	}
}

// TestConcurrentAdmitsCoalesce: 64 concurrent admits of one key go to Redis as far fewer
// script calls than admits (each flight's admits of the key as one call), and the limit holds:
// exactly Max granted, the rest queued, every one in the line once.
func TestConcurrentAdmitsCoalesce(t *testing.T) {
	r, hook := countedRedis(t)
	ctx := context.Background()
	const n, max = 64, 20
	p := params(config.Limit{Max: max, Window: 10 * time.Second, MaxQueue: n})
	var granted, queued atomic.Int64
	start := make(chan struct{})
	var wg, ready sync.WaitGroup
	for range n {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			tk, raw := ticket(t, r, "hot", nodeA, config.PriorityNormal)
			ready.Done()
			<-start
			rep, err := r.Admit(ctx, p, tk, raw)
			switch {
			case err != nil:
				t.Error(err)
			case rep.Outcome == queue.Granted:
				granted.Add(1)
			case rep.Outcome == queue.Queued:
				queued.Add(1)
			default:
				t.Errorf("admit: %+v", rep)
			}
		}()
	}
	ready.Wait() // every goroutine has its ticket and waits at start
	before := hook.Count()
	close(start)
	wg.Wait()
	calls := hook.Count() - before
	if granted.Load() != max || queued.Load() != n-max {
		t.Errorf("%d granted and %d queued, want %d and %d", granted.Load(), queued.Load(), max, n-max)
	}
	if st, err := r.State(ctx, "hot", p); err != nil || st.Queued[config.PriorityNormal.Line()] != n-max {
		t.Errorf("state %+v, %v: want %d waiting", st, err, n-max)
	}
	t.Logf("%d concurrent admits of one key: %d script calls", n, calls)
	if calls > n/4 {
		t.Errorf("%d concurrent admits of one key took %d script calls, want at most %d", n, calls, n/4)
	}
}

// countedRedis opens a backend on a private Redis, its scripts loaded, with a counter of the
// script calls it sends.
func countedRedis(t *testing.T) (*queue.Redis, *redistest.CommandCounter) {
	t.Helper()
	srv := redistest.Server(t)
	rdb := srv.Client(t)
	hook := &redistest.CommandCounter{Names: []string{"evalsha", "eval", "fcall"}}
	rdb.AddHook(hook)
	r := queue.NewRedis(rdb, srv.Prefix(t), 4)
	if err := r.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, hook
}

// TestLateCoalescedAdmitsUndone: admits sent together, as one script call, whose answer lands
// after every caller stopped waiting are each undone: their grants go back to the window and
// their queued tickets leave the line.
func TestLateCoalescedAdmitsUndone(t *testing.T) {
	srv := redistest.Server(t)
	px, err := faultproxy.Start(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	rdb := redis.NewClient(&redis.Options{Addr: px.Addr()})
	defer rdb.Close()
	hook := &redistest.CommandCounter{Names: []string{"evalsha", "eval", "fcall"}}
	rdb.AddHook(hook)
	r := queue.NewRedis(rdb, srv.Prefix(t), 4)
	ctx := context.Background()
	if err := r.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	p := params(config.Limit{Max: 3, Window: 10 * time.Second, MaxQueue: 100})
	const n = 8
	tks := make([]*queue.Ticket, n+1)
	raws := make([][]byte, n+1)
	for i := range tks {
		tks[i], raws[i] = ticket(t, r, "late", nodeA, config.PriorityNormal)
	}
	px.SetLatency(250*time.Millisecond, 0)
	start := time.Now()
	// The first admit takes the one flight; the others, which come while it flies, go
	// together when it lands, and land after their callers stopped waiting.
	first := make(chan error, 1)
	go func() {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rep, err := r.Admit(fctx, p, tks[0], raws[0])
		if err == nil && rep.Outcome != queue.Granted {
			err = fmt.Errorf("first admit: %+v", rep)
		}
		first <- err
	}()
	// The first admit is in the air (sent, its answer held back) before the others come.
	for deadline := time.Now().Add(10 * time.Second); hook.Count() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first admit was not sent")
		}
	}
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actx, cancel := context.WithDeadline(ctx, start.Add(700*time.Millisecond))
			defer cancel()
			if rep, err := r.Admit(actx, p, tks[i], raws[i]); !errors.Is(err, queue.ErrNoAnswer) {
				t.Errorf("admit %d: %+v, %v; want no answer by its deadline", i, rep, err)
			}
		}()
	}
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if calls := hook.Count(); calls != 2 {
		t.Errorf("%d script calls, want 2: the first admit's and one for the other %d", calls, n)
	}
	px.Heal()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := r.State(ctx, "late", p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Used == 1 && st.Queued == [config.NumPriorities]int{} && st.Counters["refunded"] == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %+v; want only the first admit's grant left, nothing queued, 2 grants refunded", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentEnqueuesCoalesce: 64 concurrent enqueues of one key go to Redis as far fewer
// script calls than jobs, and each job is in its line once, with its record; the line's bound
// refuses exactly the jobs past it.
func TestConcurrentEnqueuesCoalesce(t *testing.T) {
	r, hook := countedRedis(t)
	ctx := context.Background()
	const n, maxQueue = 64, 50
	p := params(config.Limit{Max: 1000, Window: time.Second, MaxQueue: maxQueue})
	var queued, full atomic.Int64
	ids := make(chan string, n)
	start := make(chan struct{})
	var wg, ready sync.WaitGroup
	for i := range n {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			tk, raw, rec := newJob(t, r, "jobs", "h", []byte{byte(i)}, 0)
			ready.Done()
			<-start
			rep, err := r.Enqueue(ctx, p, tk, raw, rec, 0)
			switch {
			case err != nil:
				t.Error(err)
			case rep.Outcome == queue.Queued:
				queued.Add(1)
				ids <- string(tk.ID)
			case rep.Outcome == queue.Full:
				full.Add(1)
			default:
				t.Errorf("enqueue: %+v", rep)
			}
		}()
	}
	ready.Wait()
	before := hook.Count()
	close(start)
	wg.Wait()
	close(ids)
	calls := hook.Count() - before
	if queued.Load() != maxQueue || full.Load() != n-maxQueue {
		t.Errorf("%d queued and %d refused as full, want %d and %d", queued.Load(), full.Load(), maxQueue, n-maxQueue)
	}
	if st, err := r.State(ctx, "jobs", p); err != nil || st.Queued[config.PriorityNormal.Line()] != maxQueue {
		t.Errorf("state %+v, %v: want %d waiting", st, err, maxQueue)
	}
	for id := range ids {
		if res, err := r.Result(ctx, "jobs", []byte(id)); err != nil || res.State != queue.JobPending {
			t.Errorf("job %x: %+v, %v; want pending", id, res, err)
		}
	}
	t.Logf("%d concurrent enqueues of one key: %d script calls", n, calls)
	if calls > n/4 {
		t.Errorf("%d concurrent enqueues of one key took %d script calls, want at most %d", n, calls, n/4)
	}
}

// TestConcurrentFinishesCoalesce: the ends of 64 runs of one key, sent at once with the
// deadline a processor gives them, go to Redis as far fewer script calls than runs, and each
// job ends with its own result.
func TestConcurrentFinishesCoalesce(t *testing.T) {
	r, hook := countedRedis(t)
	ctx := context.Background()
	const n = 64
	p := params(config.Limit{Max: 1000, Window: time.Second})
	for range n {
		enqueueJob(t, r, p, "jobs", "h", 0)
	}
	rep := grantWith(t, r, "jobs", p, queue.GrantArgs{Node: nodeA[:], Batch: n, ClaimTimeout: time.Second, Mine: []string{"h"},
		Slots: []int{n}, Lease: time.Minute, Hold: time.Second, MaxLost: 1})
	if len(rep.Jobs) != n {
		t.Fatalf("%d jobs granted, want %d", len(rep.Jobs), n)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, g := range rep.Jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			f, _, err := r.FinishJob(fctx, "jobs", p, queue.RunEnd{ID: g.ID, Run: g.Job.Runs, Outcome: queue.RunDone, Data: g.ID})
			if err != nil || f != queue.FinishDone {
				t.Errorf("finish: %v, %v", f, err)
			}
		}()
	}
	before := hook.Count()
	close(start)
	wg.Wait()
	calls := hook.Count() - before
	for _, g := range rep.Jobs {
		if res, err := r.Result(ctx, "jobs", g.ID); err != nil || res.State != queue.JobEnded || string(res.Data) != string(g.ID) {
			t.Errorf("job %x: %+v, %v; want ended with its own result", g.ID, res, err)
		}
	}
	t.Logf("%d concurrent ends of runs of one key: %d script calls", n, calls)
	if calls > n/4 {
		t.Errorf("%d concurrent ends of runs of one key took %d script calls, want at most %d", n, calls, n/4)
	}
}
