package queue

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/faultproxy"
	"github.com/rateltd/rateltd/internal/redistest"
)

// TestMissedWakeups: a listener that hears every numbered wake-up reports none missed; one
// whose wake-up never reached it (counted but not published, as a message pub/sub dropped)
// reports it at the next look but one when nothing follows it, at the next when a later one
// shows the gap, and a count started again (lapsed, or Redis lost it) as a loss too; each loss
// once. Unnumbered events (a line opened, a job's end) count for nothing.
func TestMissedWakeups(t *testing.T) {
	srv := redistest.Server(t)
	rdb := srv.Client(t)
	r := NewRedis(rdb, srv.Prefix(t), config.DefaultIndexShards)
	if err := r.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	node := []byte("0123456789abcdef")
	events := liveListener(t, r, r, node)
	ctx := context.Background()
	receive := func(want Event) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("received %+v, want %+v", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%+v not received within 10s", want)
		}
	}
	missed := func(want bool, when string) {
		t.Helper()
		wantMissed(t, r, want, when)
	}
	broadcast := func(ev Event) {
		t.Helper()
		if err := r.Broadcast(ctx, ev); err != nil {
			t.Fatal(err)
		}
		receive(ev)
	}
	missed(true, "first look: nothing watched before")
	missed(false, "nothing sent")
	broadcast(Event{Kind: EventRecheck, Key: "a"})
	broadcast(Event{Kind: EventRuntime, Key: "b"})
	broadcast(Event{Kind: EventJobDone, Key: "c"})
	missed(false, "all heard")
	missed(false, "all heard, again")

	// Lost at the tail: nothing follows it.
	if err := rdb.Incr(ctx, r.ks.wakes()).Err(); err != nil {
		t.Fatal(err)
	}
	missed(false, "lost one may still be on its way")
	missed(true, "lost one not heard a poll later")
	missed(false, "the loss reported once")
	broadcast(Event{Kind: EventRecheck, Key: "d"})
	missed(false, "heard the next one")

	// Lost, then a later one shows the gap.
	if err := rdb.Incr(ctx, r.ks.wakes()).Err(); err != nil {
		t.Fatal(err)
	}
	broadcast(Event{Kind: EventRecheck, Key: "e"})
	missed(true, "a number skipped")
	missed(false, "the gap reported once")

	// The count started again.
	if err := rdb.Del(ctx, r.ks.wakes()).Err(); err != nil {
		t.Fatal(err)
	}
	broadcast(Event{Kind: EventRecheck, Key: "f"})
	missed(true, "the count started again")
	missed(false, "after the restart")
	broadcast(Event{Kind: EventRecheck, Key: "g"})
	missed(false, "counting from the restart")

	// The count lives on with the wake-ups (G9: every key has a TTL).
	if ttl := rdb.PTTL(ctx, r.ks.wakes()).Val(); ttl <= 0 || ttl > wakesTTL {
		t.Fatalf("count's TTL %v, want within (0, %v]", ttl, wakesTTL)
	}
}

// TestMemoryMissedWakeups: the in-process backend reports a wake-up that a listener had no
// room for, once.
func TestMemoryMissedWakeups(t *testing.T) {
	m := NewMemory()
	_, stop := m.Listen([]byte("0123456789abcdef"))
	defer stop()
	ctx := context.Background()
	for i := range memListenerRoom {
		if err := m.Broadcast(ctx, Event{Kind: EventRecheck, Key: string(rune('a' + i%26))}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := m.Missed(ctx); got {
		t.Fatal("Missed with every wake-up delivered")
	}
	if err := m.Broadcast(ctx, Event{Kind: EventJobDone, Key: "x"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Missed(ctx); got {
		t.Fatal("Missed for an unnumbered event dropped")
	}
	if err := m.Broadcast(ctx, Event{Kind: EventRecheck, Key: "x"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Missed(ctx); !got {
		t.Fatal("a recheck dropped for want of room not reported")
	}
	if got, _ := m.Missed(ctx); got {
		t.Fatal("a loss reported twice")
	}
}

// TestMissedWakeupsLostOnTheWire: wake-ups whose bytes never reach the listener (dropped by a
// fault-injecting proxy between it and Redis) are reported: at the next look when a later one
// arrives, at the next look but one when none follows.
func TestMissedWakeupsLostOnTheWire(t *testing.T) {
	srv := redistest.Server(t)
	px, err := faultproxy.Start(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	ctx := context.Background()
	prefix := srv.Prefix(t)
	sender := NewRedis(srv.Client(t), prefix, config.DefaultIndexShards)
	if err := sender.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	lrdb := redis.NewClient(&redis.Options{Addr: px.Addr()})
	defer lrdb.Close()
	listener := NewRedis(lrdb, prefix, config.DefaultIndexShards)
	node := []byte("0123456789abcdef")
	events := liveListener(t, listener, sender, node)
	next := func(within time.Duration) (Event, bool) {
		select {
		case ev := <-events:
			return ev, true
		case <-time.After(within):
			return Event{}, false
		}
	}
	missed := func(want bool, when string) {
		t.Helper()
		wantMissed(t, listener, want, when)
	}
	missed(true, "first look")
	missed(false, "nothing sent")
	// lose sends a recheck of key while the proxy drops what Redis sends the listener. Should
	// the proxy not have read it before the fault ends (it reads at once; a stalled machine
	// may delay it), the recheck arrives, and it is tried again on another key.
	lose := func(key string) {
		t.Helper()
		for try := range 5 {
			px.Blackhole(faultproxy.Downstream)
			k := key + string(rune('0'+try))
			if err := sender.Broadcast(ctx, Event{Kind: EventRecheck, Key: k}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			px.Heal()
			if ev, ok := next(200 * time.Millisecond); !ok {
				return
			} else if ev.Key != k {
				t.Fatalf("received %+v, want nothing or %q", ev, k)
			}
			missed(false, "a recheck that arrived late")
		}
		t.Fatal("the proxy never dropped a recheck in 5 tries")
	}
	lose("gap")
	if err := sender.Broadcast(ctx, Event{Kind: EventRecheck, Key: "after"}); err != nil {
		t.Fatal(err)
	}
	if ev, ok := next(10 * time.Second); !ok || ev.Key != "after" {
		t.Fatalf("after the fault: %+v, %v", ev, ok)
	}
	missed(true, "a number skipped on the wire")
	missed(false, "reported once")

	lose("tail")
	missed(false, "the lost one may still be on its way")
	missed(true, "the lost one not heard a poll later")
	missed(false, "reported once")
}

// wantMissed fails unless r.Missed reports want; when says at which point.
func wantMissed(t *testing.T, r *Redis, want bool, when string) {
	t.Helper()
	got, err := r.Missed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("%s: Missed %v, want %v", when, got, want)
	}
}

// liveListener returns the events of listener.Listen(node) once the subscription is live: an
// event sent after it arrives. It sends warm-ups to node by sender until one arrives, then
// drains those that follow. The listener stops when the test ends.
func liveListener(t *testing.T, listener, sender *Redis, node []byte) <-chan Event {
	t.Helper()
	events, stop := listener.Listen(node)
	t.Cleanup(stop)
	for try := 0; ; try++ {
		if err := sender.Notify(context.Background(), node, Event{Kind: EventClaim, Key: "warm"}); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-events:
			if ev.Key != "warm" {
				t.Fatalf("received %+v before the subscription was live", ev)
			}
			for {
				select {
				case <-events: // a warm-up sent twice
				case <-time.After(100 * time.Millisecond):
					return events
				}
			}
		case <-time.After(100 * time.Millisecond):
		}
		if try == 100 {
			t.Fatal("the subscription not live within 10s")
		}
	}
}
