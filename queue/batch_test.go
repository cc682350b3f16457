package queue_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
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
