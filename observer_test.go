package rateltd

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type eventLog struct {
	mu     sync.Mutex
	events []RequestEvent
}

func (l *eventLog) ObserveRequest(e RequestEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) last() RequestEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events[len(l.events)-1]
}

// TestObserverSeesEveryOutcome: the Observer hears of each request once, with its outcome,
// whether it queued, and how long it waited and ran.
func TestObserverSeesEveryOutcome(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		log := &eventLog{}
		c := h.client(Config{Observer: log, Limits: map[string]Limit{
			"k":     {Max: 1, Window: 200 * time.Millisecond},
			"never": {Max: 1, Window: time.Hour, MaxQueue: -1},
		}})
		ctx := context.Background()
		slow := func(context.Context) (any, error) { time.Sleep(20 * time.Millisecond); return nil, nil }

		if _, err := c.Request(ctx, "k", slow, WithPriority(PriorityHigh)); err != nil {
			t.Fatal(err)
		}
		if e := log.last(); e.Outcome != OutcomeSucceeded || e.Queued || e.Key != "k" || e.Priority != PriorityHigh || e.Run < 20*time.Millisecond {
			t.Fatalf("admitted at once: %+v", e)
		}
		if _, err := c.Request(ctx, "k", func(context.Context) (any, error) { return nil, errors.New("upstream 500") }); err == nil {
			t.Fatal("fn's error lost")
		}
		if e := log.last(); e.Outcome != OutcomeFailed || !e.Queued || e.Wait < 100*time.Millisecond {
			t.Fatalf("queued, then failed: %+v (waited for the 200ms window)", e)
		}
		c.Request(ctx, "never", slow)
		if _, err := c.Request(ctx, "never", slow); !errors.Is(err, ErrQueueFull) {
			t.Fatal(err)
		}
		if e := log.last(); e.Outcome != OutcomeRejected || e.Run != 0 {
			t.Fatalf("rejected: %+v", e)
		}
		if err := c.Pause(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Request(ctx, "k", slow, WithTimeout(30*time.Millisecond)); !errors.Is(err, ErrTimeout) {
			t.Fatal(err)
		}
		if e := log.last(); e.Outcome != OutcomeExpired || e.Wait < 30*time.Millisecond {
			t.Fatalf("expired: %+v", e)
		}
		cctx, cancel := context.WithCancel(ctx)
		ch := c.RequestAsync(cctx, "k", slow)
		waitQueued(t, c, "k", 1)
		cancel()
		<-ch
		if e := log.last(); e.Outcome != OutcomeCancelled {
			t.Fatalf("cancelled: %+v", e)
		}
		log.mu.Lock()
		n := len(log.events)
		log.mu.Unlock()
		if n != 6 {
			t.Fatalf("%d events for 6 requests", n)
		}
	})
}
