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

// costLog records the events of requests, job runs and settles.
type costLog struct {
	eventLog
	jobs    chan JobEvent
	settles chan SettleEvent
}

func (l *costLog) ObserveJob(e JobEvent)       { l.jobs <- e }
func (l *costLog) ObserveSettle(e SettleEvent) { l.settles <- e }

// next returns the next event of ch, failing the test when none comes within 5s.
func next[E any](t *testing.T, ch chan E) E {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		var zero E
		t.Fatalf("no %T within 5s", zero)
		return zero
	}
}

// TestObserverCosts: request and job events carry their cost; a SettleObserver hears of each
// grant settled — in fn, in a handler, and with fn's ctx after fn returned — with the cost it
// was granted with and the one settled, and not of a Settle that settled nothing.
func TestObserverCosts(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		log := &costLog{jobs: make(chan JobEvent, 10), settles: make(chan SettleEvent, 10)}
		c := h.client(Config{Observer: log, Limits: map[string]Limit{
			"tok":   {Max: 10, Window: time.Hour, Also: []Rate{{Max: 100, Window: time.Hour, Units: true}}},
			"plain": {Max: 10, Window: time.Hour},
		}})
		ctx := context.Background()
		settle := func(n int) func(context.Context) (any, error) {
			return func(ctx context.Context) (any, error) { return nil, Settle(ctx, n) }
		}
		if _, err := c.Request(ctx, "tok", settle(10), WithCost(40)); err != nil {
			t.Fatal(err)
		}
		if e, s := log.last(), next(t, log.settles); e.Cost != 40 || s != (SettleEvent{Key: "tok", Cost: 40, Actual: 10}) {
			t.Fatalf("request of cost 40 settled at 10: %+v, %+v", e, s)
		}
		var kept context.Context
		if _, err := c.Request(ctx, "tok", func(ctx context.Context) (any, error) { kept = ctx; return nil, nil }); err != nil {
			t.Fatal(err)
		}
		if e := log.last(); e.Cost != 1 {
			t.Fatalf("a request without WithCost: cost %d, want 1", e.Cost)
		}
		if err := Settle(context.WithoutCancel(kept), 7); err != nil {
			t.Fatal(err)
		}
		if s := next(t, log.settles); s != (SettleEvent{Key: "tok", Cost: 1, Actual: 7}) {
			t.Fatalf("settled after fn: %+v", s)
		}
		if err := Settle(context.WithoutCancel(kept), 3); !errors.Is(err, ErrNotSettleable) {
			t.Fatalf("settled twice: %v", err)
		}
		if _, err := c.Request(ctx, "plain", settle(5), WithCost(3)); !errors.Is(err, ErrNotSettleable) {
			t.Fatalf("settle on a limit without units: %v", err)
		}
		if e := log.last(); e.Cost != 3 {
			t.Fatalf("request of cost 3 on a limit without units: %+v", e)
		}
		if err := c.Handle("h", func(ctx context.Context, _ []byte) ([]byte, error) { return nil, Settle(ctx, 20) }); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Enqueue(ctx, "tok", "h", nil, WithCost(25)); err != nil {
			t.Fatal(err)
		}
		if j, s := next(t, log.jobs), next(t, log.settles); j.Cost != 25 || j.Outcome != JobOutcomeSucceeded || s != (SettleEvent{Key: "tok", Cost: 25, Actual: 20}) {
			t.Fatalf("job of cost 25 settled at 20: %+v, %+v", j, s)
		}
		select {
		case s := <-log.settles:
			t.Fatalf("a settle that settled nothing was observed: %+v", s)
		default:
		}
	})
}
