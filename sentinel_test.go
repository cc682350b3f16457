package rateltd

import (
	"context"
	"errors"
	"sync"
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
	c, err := New(Config{Redis: s.Client(t), Prefix: s.Prefix(t), PollInterval: 100 * time.Millisecond,
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
	f := startFlow(c, "k")
	defer f.stop()
	eventually(t, 5*time.Second, "requests flow", func() bool { return f.okAfter(time.Now().Add(-time.Millisecond)) })

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

	eventually(t, sentinelRecovery, "requests served again after the failover", func() bool { return f.okAfter(promoted) })
	f.mu.Lock()
	t.Logf("served again %v after the promotion, %v after the kill; %d requests failed meanwhile",
		f.lastOK.Sub(promoted).Round(10*time.Millisecond), f.lastOK.Sub(killed).Round(10*time.Millisecond), f.failures)
	if f.badErr != nil {
		t.Errorf("a request failed with %v; want ErrUnavailable", f.badErr)
	}
	if f.ranFailing > 0 {
		t.Errorf("fn ran for %d requests that failed", f.ranFailing)
	}
	f.mu.Unlock()

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

// flow is a steady stream of requests of one key on two goroutines, each recording its outcome.
type flow struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu         sync.Mutex // guards the fields below; written by the flowing goroutines, read by the test
	lastOK     time.Time  // the end of the latest request that succeeded
	failures   int        // requests that failed
	ranFailing int        // requests that failed although their fn ran: must stay 0
	badErr     error      // an error other than ErrUnavailable, if any
}

func startFlow(c *Client, key string) *flow {
	f := &flow{done: make(chan struct{})}
	for range 2 {
		f.wg.Go(func() {
			tick := time.NewTicker(time.Millisecond) // a steady load, not a spin on fast failures
			defer tick.Stop()
			for {
				select {
				case <-f.done:
					return
				case <-tick.C:
				}
				ran := false
				_, err := c.Request(context.Background(), key, func(context.Context) (any, error) { ran = true; return nil, nil },
					WithTimeout(500*time.Millisecond))
				f.record(err, ran)
			}
		})
	}
	return f
}

func (f *flow) record(err error, ran bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err == nil:
		f.lastOK = time.Now()
		return
	case !errors.Is(err, ErrUnavailable):
		f.badErr = err
	}
	f.failures++
	if ran {
		f.ranFailing++
	}
}

// okAfter reports whether a request succeeded after t0.
func (f *flow) okAfter(t0 time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastOK.After(t0)
}

func (f *flow) stop() {
	close(f.done)
	f.wg.Wait()
}

// clusterRecovery bounds how long after a replica of a killed master is promoted the same
// Client serves that master's keys again, on a cluster client with go-redis's defaults (whose
// own reload of the slot map comes a minute later).
const clusterRecovery = 5 * time.Second

// TestClusterMasterKilledReplicaServes: on a cluster of three masters with a replica each, the
// master of a busy key is killed; once its replica is promoted, the same Client — on a cluster
// client left at go-redis's defaults — serves the key again within clusterRecovery, and the
// requests that failed meanwhile failed with ErrUnavailable, fn not run.
func TestClusterMasterKilledReplicaServes(t *testing.T) {
	t.Parallel()
	cl := redistest.FreshReplicatedCluster(t)
	c, err := New(Config{Redis: cl.Client(t), Prefix: cl.Prefix(t), PollInterval: 100 * time.Millisecond,
		Default: Limit{Max: 100000, Window: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := startFlow(c, "busy")
	defer f.stop()
	eventually(t, 5*time.Second, "requests flow", func() bool { return f.okAfter(time.Now().Add(-time.Millisecond)) })
	cl.WaitReplicated(t)
	killed := time.Now()
	cl.KillMasterOf(t, "busy")
	cl.WaitPromoted(t, "busy", 15*time.Second)
	promoted := time.Now()
	eventually(t, clusterRecovery, "the key served again after its replica took over", func() bool { return f.okAfter(promoted) })
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Logf("promoted %v after the kill; served again %v after the promotion; %d requests failed meanwhile",
		promoted.Sub(killed).Round(10*time.Millisecond), f.lastOK.Sub(promoted).Round(10*time.Millisecond), f.failures)
	if f.badErr != nil {
		t.Errorf("a request failed with %v; want ErrUnavailable", f.badErr)
	}
	if f.ranFailing > 0 {
		t.Errorf("fn ran for %d requests that failed", f.ranFailing)
	}
}
