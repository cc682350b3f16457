package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
