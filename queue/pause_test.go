package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

func TestPauseInForceRule(t *testing.T) {
	const now = 1000
	for _, c := range []struct{ a, b, want int64 }{
		{queue.NotPaused, queue.NotPaused, queue.NotPaused},
		{queue.PausedForever, queue.NotPaused, queue.PausedForever},
		{2000, queue.PausedForever, queue.PausedForever},
		{2000, 3000, 3000},
		{3000, 2000, 3000},
		{500, queue.NotPaused, queue.NotPaused}, // ended
		{500, 2000, 2000},
		{now, queue.NotPaused, queue.NotPaused}, // ends now
		{-2, queue.NotPaused, queue.NotPaused},  // no pause rateltd writes
	} {
		if got := queue.PauseInForce(now, c.a, c.b); got != c.want {
			t.Errorf("PauseInForce(%d, %d, %d) = %d; want %d", now, c.a, c.b, got, c.want)
		}
		if got := queue.PauseInForce(now, c.b, c.a); got != c.want {
			t.Errorf("PauseInForce(%d, %d, %d) = %d; want %d", now, c.b, c.a, got, c.want)
		}
	}
}

// TestPauseInForce: on both backends, a key's own pause and the external one (its group's or
// everything's, Params.ExtPause) combine by PauseInForce's rule, in one encoding: Check, State
// and Admit all report the pause it gives, PausedForever for one with no end.
func TestPauseInForce(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		now, err := be.Time(ctx)
		if err != nil {
			t.Fatal(err)
		}
		minute := int64(time.Minute / time.Microsecond)
		// Ends before the deadline of the tickets admitted (a minute), so that they queue.
		pauses := []int64{queue.NotPaused, queue.PausedForever, now - minute, now + minute/3, now + minute/2}
		for i, own := range pauses {
			for j, ext := range pauses {
				key := fmt.Sprintf("k%d-%d", i, j)
				if own != queue.NotPaused {
					if err := be.PauseKey(ctx, key, own); err != nil {
						t.Fatal(err)
					}
				}
				p := params(config.Limit{Max: 10, Window: time.Minute})
				p.ExtPause = ext
				want := queue.PauseInForce(now, own, ext)
				name := fmt.Sprintf("own %d, external %d (now %d)", own, ext, now)
				checkPause(t, be, key, p, want, name)
				st, err := be.State(ctx, key, p)
				if err != nil {
					t.Fatal(err)
				}
				if wantOwn := queue.PauseInForce(now, own, queue.NotPaused); st.PausedUntil != wantOwn {
					t.Errorf("%s: State's own pause %d; want %d", name, st.PausedUntil, wantOwn)
				}
				tk, raw := ticket(t, be, key, nodeA, config.PriorityNormal)
				rep, err := be.Admit(ctx, p, tk, raw)
				switch {
				case err != nil:
					t.Fatal(err)
				case want == queue.NotPaused && rep.Outcome != queue.Granted:
					t.Errorf("%s: admit %+v; want granted", name, rep)
				case want != queue.NotPaused && (rep.Outcome != queue.Queued || rep.Earliest != want):
					t.Errorf("%s: admit %+v; want queued, earliest %d", name, rep, want)
				}
				if want != queue.NotPaused {
					refusedWhilePaused(t, be, key, p, want, name)
				}
			}
		}
	})
}

// refusedWhilePaused checks that a request that may not queue is refused while key is paused
// until want, and that the admission's Decision says for how long (-1: with no end).
func refusedWhilePaused(t *testing.T, be queue.Backend, key string, p queue.Params, want int64, name string) {
	t.Helper()
	p.Limit.MaxQueue = -1
	tk, raw := ticket(t, be, key, nodeA, config.PriorityNormal)
	rep, err := be.Admit(context.Background(), p, tk, raw)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := rep.Decision(p.Limit)
	wantRetry := time.Duration(-1)
	if want != queue.PausedForever {
		wantRetry = time.Duration(want-rep.Now) * time.Microsecond
	}
	if rep.Outcome != queue.Full || !ok || d.Allowed || d.RetryAfter != wantRetry {
		t.Errorf("%s: admit that may not queue %+v, decision %+v; want full, retry after %v", name, rep, d, wantRetry)
	}
}

// checkPause checks that Check sees the pause want on key.
func checkPause(t *testing.T, be queue.Backend, key string, p queue.Params, want int64, name string) {
	t.Helper()
	d, err := be.Check(context.Background(), key, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	now, err := be.Time(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case want == queue.NotPaused && !d.Allowed:
		t.Errorf("%s: Check %+v; want allowed", name, d)
	case want == queue.PausedForever && (d.Allowed || d.RetryAfter != -1):
		t.Errorf("%s: Check %+v; want retry after -1 (no end)", name, d)
	case want > 0 && (d.Allowed || d.RetryAfter > time.Duration(want-now+1e6)*time.Microsecond || d.RetryAfter < time.Duration(want-now)*time.Microsecond):
		t.Errorf("%s: Check %+v; want retry after about %v", name, d, time.Duration(want-now)*time.Microsecond)
	}
}
