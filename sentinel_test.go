package rateltd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/lua"
)

// sentinelRecovery bounds how long after the sentinels have promoted the replica the same
// Client serves requests again: go-redis's failover client learns of the new master at once
// (+switch-master), and a key skips Redis for 1s after a failure.
const sentinelRecovery = 5 * time.Second

// TestSentinelFailover: a Client on a failover client (a master, a replica, three sentinels)
// serves requests; the master is killed while requests flow; once the replica is promoted, the
// same Client serves requests again within sentinelRecovery — though the new master has none
// of the scripts loaded —, requests that wait in line are granted there, and the requests that
// failed meanwhile failed with ErrUnavailable, fn not run.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := redistest.FreshSentinel(t)
	rdb := s.Client(t)
	c, err := New(Config{Redis: rdb, Prefix: s.Prefix(t), PollInterval: 100 * time.Millisecond,
		Default: Limit{Max: 100000, Window: time.Second},
		Limits:  map[string]Limit{"slow": {Max: 1, Window: 100 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for range 10 {
		if _, err := c.Request(ctx, "k", noop); err != nil {
			t.Fatalf("before the failover: %v", err)
		}
	}

	// Requests flow on two goroutines until the test ends; each records its outcome.
	var (
		mu       sync.Mutex // guards the three below; written by the flowing goroutines, read here
		lastOK   time.Time  // the end of the latest request that succeeded
		failures int
		badErr   error // an error other than ErrUnavailable, if any
	)
	var ranWhileFailing atomic.Int64 // fn runs of requests that failed: must stay 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			tick := time.NewTicker(time.Millisecond) // a steady load, not a spin on fast failures
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				var ran bool
				_, err := c.Request(ctx, "k", func(context.Context) (any, error) { ran = true; return nil, nil },
					WithTimeout(500*time.Millisecond))
				mu.Lock()
				switch {
				case err == nil:
					lastOK = time.Now()
				case errors.Is(err, ErrUnavailable):
					failures++
					if ran {
						ranWhileFailing.Add(1)
					}
				default:
					failures++
					badErr = err
				}
				mu.Unlock()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	okAfter := func(t0 time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		return lastOK.After(t0)
	}
	eventually(t, 5*time.Second, "requests flow", func() bool { return okAfter(time.Now().Add(-time.Millisecond)) })

	s.WaitReplicated(t)
	// Scripts are not replicated: the replica to be promoted has none.
	replica := s.Replica(t).Client(t)
	if loaded, err := replica.ScriptExists(ctx, lua.Admit.Hash()).Result(); err != nil || loaded[0] {
		t.Fatalf("admit script on the replica: %v %v; want not loaded", loaded, err)
	}
	killed := time.Now()
	s.KillMaster(t)
	addr := s.WaitFailover(t, 15*time.Second)
	promoted := time.Now()
	t.Logf("the replica %s promoted %v after the kill", addr, promoted.Sub(killed).Round(10*time.Millisecond))

	eventually(t, sentinelRecovery, "requests served again after the failover", func() bool { return okAfter(promoted) })
	mu.Lock()
	t.Logf("served again %v after the promotion, %v after the kill; %d requests failed meanwhile",
		lastOK.Sub(promoted).Round(10*time.Millisecond), lastOK.Sub(killed).Round(10*time.Millisecond), failures)
	if badErr != nil {
		t.Errorf("a request failed with %v; want ErrUnavailable", badErr)
	}
	mu.Unlock()
	if n := ranWhileFailing.Load(); n > 0 {
		t.Errorf("fn ran for %d requests that failed", n)
	}
	for range 20 {
		if _, err := c.Request(ctx, "k2", noop, WithTimeout(time.Second)); err != nil {
			t.Fatalf("after the failover: %v", err)
		}
	}
	if st, err := c.Status(ctx, "k2"); err != nil || st.Used != 20 {
		t.Fatalf("status after the failover: used %d, %v; want 20", st.Used, err)
	}
	// Requests that wait in line are granted by the processor's own scripts on the new master.
	var results []<-chan Result
	for range 5 {
		results = append(results, c.RequestAsync(ctx, "slow", noop, WithTimeout(5*time.Second)))
	}
	for i, ch := range results {
		if r := <-ch; r.Err != nil {
			t.Fatalf("queued request %d after the failover: %v", i, r.Err)
		}
	}
}
