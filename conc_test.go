package rateltd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// G14 — concurrency caps: every test runs on every backend (memory, redis, cluster).

// concRun has cs share n requests of key, each running hold, and returns the most that ran at
// once (counted inside fn, between its start and its end: the slot is held around it).
func concRun(t *testing.T, cs []*Client, key string, n int, hold time.Duration, opts ...Option) int {
	t.Helper()
	var running, most atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cs[i%len(cs)].Request(context.Background(), key, func(context.Context) (any, error) {
				now := running.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				time.Sleep(hold)
				running.Add(-1)
				return nil, nil
			}, append(opts, WithTimeout(time.Minute))...)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	return int(most.Load())
}

// TestG14ConcurrencyCap: three nodes run 24 requests of 40ms on a key capped at 3 running (no
// rate), then on a key of 3 running and 20 a second: never more than 3 run at once, and the
// cap is used (3 do run at once).
func TestG14ConcurrencyCap(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cs := h.clients(3, Config{Limits: map[string]Limit{
			"cap":  {Concurrency: 3},
			"both": {Max: 20, Window: time.Second, Concurrency: 3},
		}})
		for _, key := range []string{"cap", "both"} {
			if most := concRun(t, cs, key, 24, 40*time.Millisecond); most != 3 {
				t.Fatalf("%s: at most %d ran at once, want exactly 3 (the cap, used)", key, most)
			}
			// Slots are freed just after their calls return, by a goroutine of their node.
			eventually(t, 5*time.Second, key+": nothing in flight or queued after the run", func() bool {
				st := status(t, cs[0], key)
				return st.InFlight == 0 && st.Queued == 0
			})
		}
	})
}

// TestG14FreedSlotStartsHead: with a cap of 1 and a poll of 10s, the request waiting for the
// slot starts within 500ms of the holder's end: the release wakes the processors, no poll.
// Status counts the slot in flight meanwhile.
func TestG14FreedSlotStartsHead(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cs := h.clients(2, Config{PollInterval: 10 * time.Second, ClaimTimeout: 30 * time.Second,
			Default: Limit{Concurrency: 1}})
		release := make(chan struct{})
		held := make(chan struct{})
		first := cs[0].RequestAsync(context.Background(), "one", func(context.Context) (any, error) {
			close(held)
			<-release
			return nil, nil
		})
		<-held
		if st := status(t, cs[1], "one"); st.InFlight != 1 || st.Used != 1 || st.Remaining != 0 {
			t.Fatalf("while one runs: in flight %d, used %d, remaining %d", st.InFlight, st.Used, st.Remaining)
		}
		var started atomic.Int64
		second := cs[1].RequestAsync(context.Background(), "one", func(context.Context) (any, error) {
			started.Store(time.Now().UnixNano())
			return nil, nil
		})
		waitQueued(t, cs[1], "one", 1)
		time.Sleep(100 * time.Millisecond)
		if started.Load() != 0 {
			t.Fatal("the second started while the first held the only slot")
		}
		ended := time.Now()
		close(release)
		for _, ch := range []<-chan Result{first, second} {
			if r := <-ch; r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		if wait := time.Unix(0, started.Load()).Sub(ended); wait > 500*time.Millisecond {
			t.Fatalf("the second started %v after the slot was freed", wait)
		}
	})
}

// TestG14JobsUnderCap: durable jobs take slots as requests do: 12 jobs of 30ms on two nodes of
// 8 workers each, on a key capped at 2, run at most 2 at once, and a request on the key waits
// for a slot like them.
func TestG14JobsUnderCap(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cs := h.clients(2, Config{Workers: 8, Default: Limit{Concurrency: 2}})
		var running, most atomic.Int64
		for _, c := range cs {
			c.Handle("work", func(ctx context.Context, p []byte) ([]byte, error) {
				now := running.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				time.Sleep(30 * time.Millisecond)
				running.Add(-1)
				return nil, nil
			})
		}
		ctx := context.Background()
		var ids []string
		for range 12 {
			id, err := cs[0].Enqueue(ctx, "jobs", "work", nil)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			if _, err := cs[1].Wait(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if m := most.Load(); m != 2 {
			t.Fatalf("at most %d jobs ran at once, want exactly 2", m)
		}
	})
}

// TestG14Validation: a cap alone is a valid limit; a negative cap, and a cap with a partial
// rate, are refused naming the field.
func TestG14Validation(t *testing.T) {
	for _, tc := range []struct {
		l    Limit
		want string
	}{
		{Limit{Concurrency: 5}, ""},
		{Limit{Max: 10, Window: time.Second, Concurrency: 5}, ""},
		{Limit{Concurrency: -1}, "Limit.Concurrency"},
		{Limit{Concurrency: 5, Window: time.Second}, "Limit.Max"},
		{Limit{}, "Limit.Max"},
	} {
		err := tc.l.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, ErrInvalidConfig) || !contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.l, err, tc.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestAlsoPastFourRefused: a fifth further rate is refused, also after WithDefaults.
func TestAlsoPastFourRefused(t *testing.T) {
	r := Rate{Max: 1, Window: time.Second}
	l := Limit{Max: 1, Window: time.Second, Also: []Rate{r, r, r, r, r}}
	for _, l := range []Limit{l, l.WithDefaults()} {
		if err := l.Validate(); !errors.Is(err, ErrInvalidConfig) || !contains(err.Error(), "Also") {
			t.Fatalf("five further rates: %v", err)
		}
	}
}
