package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// failing is a backend whose start fails at step failAt (1: the heartbeat, 2: loading the
// runtime configuration), to reach New's error paths.
type failing struct {
	queue.Backend
	failAt int
}

var errInjected = errors.New("injected")

func (f *failing) Heartbeat(ctx context.Context, node []byte, ttl time.Duration) (bool, error) {
	if f.failAt == 1 {
		return false, errInjected
	}
	return f.Backend.Heartbeat(ctx, node, ttl)
}

func (f *failing) LoadRuntime(ctx context.Context) (queue.Runtime, error) {
	if f.failAt <= 2 {
		return queue.Runtime{}, errInjected
	}
	return f.Backend.LoadRuntime(ctx)
}

// TestStartFailureLeavesNothing: whichever step of a node's start fails, the job context is
// cancelled and the error says that the backend is unavailable, keeping the cause.
func TestStartFailureLeavesNothing(t *testing.T) {
	for step := 1; step <= 2; step++ {
		n := &Node{be: &failing{Backend: queue.NewMemory(), failAt: step}, cfg: config.Config{}.WithDefaults(),
			log: newLogLimiter(config.Config{}.WithDefaults().Logger)}
		err := n.start(context.Background())
		if !errors.Is(err, errInjected) {
			t.Fatalf("step %d: err = %v; want the injected one", step, err)
		}
		if n.jobCtx.Err() == nil {
			t.Errorf("step %d failed and the job context is still live", step)
		}
	}
	_, err := New(context.Background(), &failing{Backend: queue.NewMemory(), failAt: 1}, config.Config{}.WithDefaults())
	if !errors.Is(err, config.ErrUnavailable) || !errors.Is(err, errInjected) {
		t.Errorf("New: %v; want ErrUnavailable and the cause", err)
	}
}
