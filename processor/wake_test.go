package processor

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWakeTimerNeverEarly: each time set, whether under 1 ms ahead (the fine sleep alone),
// whole milliseconds and a part, or passed, wakes the loop once, at or after it.
func TestWakeTimerNeverEarly(t *testing.T) {
	w := newWakeTimer()
	defer w.stop()
	for _, ahead := range []time.Duration{0, -time.Millisecond, 50 * time.Microsecond, 300 * time.Microsecond,
		999 * time.Microsecond, time.Millisecond, 1500 * time.Microsecond, 3200 * time.Microsecond} {
		for range 20 {
			at := time.Now().Add(ahead)
			w.set(at)
			awaitWake(t, w, fmt.Sprintf("set %v ahead", ahead))
			if now := time.Now(); now.Before(at) {
				t.Fatalf("set %v ahead: woke %v early", ahead, at.Sub(now))
			}
		}
	}
	noWake(t, w, 20*time.Millisecond, "a wake-up more than the times set")
}

// TestWakeTimerReplaces: a time set replaces the one before, earlier or later, and a wake-up
// for the one before that the loop has not taken is dropped.
func TestWakeTimerReplaces(t *testing.T) {
	w := newWakeTimer()
	defer w.stop()

	w.set(time.Now().Add(time.Hour))
	near := time.Now().Add(2 * time.Millisecond)
	w.set(near)
	awaitWake(t, w, "the nearer time set second")
	if time.Now().Before(near) {
		t.Fatal("woke before the nearer time")
	}

	w.set(time.Now().Add(300 * time.Millisecond))
	w.set(time.Now().Add(time.Hour))
	noWake(t, w, 600*time.Millisecond, "woke at a time replaced by a later one")

	w.set(time.Now()) // due at once: its wake-up waits, not taken
	deadline := time.Now().Add(10 * time.Second)
	for len(w.C) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(w.C) == 0 {
		t.Fatal("a time due at once did not wake")
	}
	w.set(time.Now().Add(time.Hour))
	noWake(t, w, 50*time.Millisecond, "a wake-up not taken outlived the time that replaced it")
}

// awaitWake fails t unless w wakes within 10 s.
func awaitWake(t *testing.T, w *wakeTimer, what string) {
	t.Helper()
	select {
	case <-w.C:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no wake-up", what)
	}
}

// noWake fails t with why if w wakes within d.
func noWake(t *testing.T, w *wakeTimer, d time.Duration, why string) {
	t.Helper()
	select {
	case <-w.C:
		t.Fatal(why)
	case <-time.After(d):
	}
}

// TestWakeTimerWaitsOnTheMonotonicClock: a time without a monotonic reading (a key's, from
// server time) reaches the goroutine as one with it, so that a step of the wall clock does not
// move the wake-up. White-box: the goroutine is not started, its channel read here.
func TestWakeTimerWaitsOnTheMonotonicClock(t *testing.T) {
	w := &wakeTimer{C: make(chan struct{}, 1), next: make(chan time.Time, 1)}
	wall := time.Now().Add(time.Second).Round(0) // Round(0) strips the monotonic reading
	w.set(wall)
	got := <-w.next
	if !strings.Contains(got.String(), " m=") {
		t.Fatalf("the goroutine waits for %v: no monotonic reading", got)
	}
	if d := got.Sub(wall); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("the goroutine waits for %v, %v from the time set", got, d)
	}
}

// TestWakeTimerStops: stop ends the goroutine while it waits for a time far ahead.
func TestWakeTimerStops(t *testing.T) {
	w := newWakeTimer()
	w.set(time.Now().Add(time.Hour))
	stopped := make(chan struct{})
	go func() { w.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not end the goroutine")
	}
}

// BenchmarkWakeLate reports how late a wake-up comes after its time, the median over b.N
// wake-ups each set 300 µs ahead: the loop's wakeTimer against a time.Timer, the way the loop
// waited before (on Linux the runtime rounds an idle wait to whole milliseconds).
//
//	go test -run '^$' -bench WakeLate ./processor
func BenchmarkWakeLate(b *testing.B) {
	const ahead = 300 * time.Microsecond
	// measure reports how late wait(at) returns after at, a time ahead from now.
	measure := func(b *testing.B, wait func(at time.Time)) {
		late := make([]time.Duration, 0, b.N)
		for b.Loop() {
			at := time.Now().Add(ahead)
			wait(at)
			late = append(late, time.Since(at))
		}
		slices.Sort(late)
		b.ReportMetric(float64(late[len(late)/2].Microseconds()), "late-µs-p50")
		b.ReportMetric(float64(late[len(late)*9/10].Microseconds()), "late-µs-p90")
	}
	b.Run("wakeTimer", func(b *testing.B) {
		w := newWakeTimer()
		defer w.stop()
		measure(b, func(at time.Time) { w.set(at); <-w.C })
	})
	b.Run("time.Timer", func(b *testing.B) {
		tm := time.NewTimer(time.Hour)
		defer tm.Stop()
		measure(b, func(at time.Time) { tm.Reset(time.Until(at)); <-tm.C })
	})
}
