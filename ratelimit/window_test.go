package ratelimit

import (
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
)

func limit(alg config.Algorithm, max int, window time.Duration) config.Limit {
	return config.Limit{Algorithm: alg, Max: max, Window: window}.WithDefaults()
}

// TestSlidingLog: at most Max grants in any window; slots free exactly a window after each grant.
func TestSlidingLog(t *testing.T) {
	l := limit(config.SlidingWindow, 3, time.Millisecond) // 1000 µs
	var w Window
	for i, at := range []int64{1000, 1100, 1200} {
		if f := w.Free(l, at, true); f != 3-i {
			t.Fatalf("free at %d = %d, want %d", at, f, 3-i)
		}
		w.Record(l, at, string(rune('a'+i)))
	}
	if f := w.Free(l, 1500, true); f != 0 {
		t.Fatalf("free when full = %d", f)
	}
	// The 1st, 2nd, 4th next requests: 1000+1000, 1100+1000, then the first slot again a window on.
	for k, want := range map[int]int64{1: 2000, 2: 2100, 3: 2200, 4: 3000, 6: 3200} {
		if got := w.Slot(l, 1500, k, 0); got != want {
			t.Errorf("slot %d = %d, want %d", k, got, want)
		}
	}
	if got := w.Used(l, 2050); got != 2 {
		t.Errorf("used at 2050 = %d, want 2 (the entry at 1000 left at 2000)", got)
	}
	w.Refund(l, 2050, "b", 1100, 1)
	if f := w.Free(l, 2050, true); f != 2 {
		t.Errorf("free after refund = %d, want 2", f)
	}
	if ra := w.ResetAfter(l, 2050); ra != 150 {
		t.Errorf("reset after = %d, want 150 (the last entry, at 1200, leaves at 2200)", ra)
	}
	w.Expire(2200)
	if !w.Empty() {
		t.Error("window not empty a window after its last grant")
	}
}

// TestFixedWindow: counts per aligned window; a refund counts only in its own window.
func TestFixedWindow(t *testing.T) {
	l := limit(config.FixedWindow, 2, time.Millisecond)
	var w Window
	w.Record(l, 1100, "a", "b")
	if f := w.Free(l, 1900, true); f != 0 {
		t.Fatalf("free = %d, want 0", f)
	}
	if s := w.Slot(l, 1900, 1, 0); s != 2000 {
		t.Errorf("slot 1 = %d, want 2000", s)
	}
	if s := w.Slot(l, 1900, 3, 0); s != 3000 {
		t.Errorf("slot 3 = %d, want 3000", s)
	}
	w.Refund(l, 1950, "a", 1100, 1)
	if f := w.Free(l, 1950, true); f != 1 {
		t.Errorf("free after refund = %d, want 1", f)
	}
	if f := w.Free(l, 2000, true); f != 2 {
		t.Errorf("free in the next window = %d, want 2", f)
	}
	w.Record(l, 2100, "c")
	w.Refund(l, 2100, "a", 1100, 1) // granted in the previous window: nothing to give back here
	if u := w.Used(l, 2100); u != 1 {
		t.Errorf("used = %d, want 1", u)
	}
}

// TestGCRA: a steady rate of Max per Window with bursts up to Burst.
func TestGCRA(t *testing.T) {
	l := config.Limit{Algorithm: config.TokenBucket, Max: 10, Window: 10 * time.Millisecond, Burst: 3} // one per 1000 µs
	var w Window
	if f := w.Free(l, 5000, true); f != 3 {
		t.Fatalf("burst free = %d, want 3", f)
	}
	w.Record(l, 5000, "a", "b", "c")
	if f := w.Free(l, 5000, true); f != 0 {
		t.Fatalf("free after the burst = %d", f)
	}
	if s := w.Slot(l, 5000, 1, 0); s != 6000 {
		t.Errorf("next slot = %d, want 6000", s)
	}
	if s := w.Slot(l, 5000, 2, 0); s != 7000 {
		t.Errorf("second slot = %d, want 7000", s)
	}
	if f := w.Free(l, 6500, true); f != 1 {
		t.Errorf("free 1.5 intervals later = %d, want 1", f)
	}
	w.Refund(l, 6500, "c", 5000, 1)
	if f := w.Free(l, 6500, true); f != 2 {
		t.Errorf("free after refund = %d, want 2", f)
	}
	if ra := w.ResetAfter(l, 6500); ra != 500 {
		t.Errorf("reset after = %d, want 500 (tat 8000 less one refunded interval)", ra)
	}
}
