package rateltd

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
)

// The chaos scenarios of Redis itself: the nodes reach a private Redis (or cluster) straight,
// and the fault is done to the server.

// TestChaosScriptFlush: SCRIPT FLUSH and FUNCTION FLUSH every 20-50ms for 10s, on every master.
// G12: lost scripts and functions cost one re-send of the commands that got NOSCRIPT or
// "Function not found" (and a reload of the lost libraries), nothing else — so Redis never looks down
// (no ErrUnavailable), every patient caller is served, no admit is charged twice (the limit is
// served: 90% of it in every key at the heal), and the counters add up.
func TestChaosScriptFlush(t *testing.T) {
	flushing := func(t *testing.T, s chaosSpec, masters []*redis.Client) {
		s.before, s.faultFor, s.after = 2*time.Second, 0, 3*time.Second
		s.inject = func() {
			ctx := context.Background()
			for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
				for _, m := range masters {
					if err := redistest.FlushScripts(ctx, m); err != nil {
						t.Errorf("SCRIPT FLUSH, FUNCTION FLUSH: %v", err)
					}
				}
				time.Sleep(time.Duration(20+rand.IntN(30)) * time.Millisecond) // the fault's rhythm
			}
		}
		s.recoverWithin = time.Second
		s.allow = either(noUnavailable, patientServed)
		runChaos(t, s)
	}
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Fresh(t)
		s := chaosBase(srv.Client(t), srv.Prefix(t))
		s.nodeRedis = func(int) redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: srv.Addr()}) }
		flushing(t, s, []*redis.Client{srv.Client(t)})
	})
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.FreshCluster(t)
		s := chaosBase(cl.Client(t), cl.Prefix(t))
		s.nodeRedis = func(int) redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
		}
		var masters []*redis.Client
		for _, a := range cl.Addrs() {
			m := redis.NewClient(&redis.Options{Addr: a})
			t.Cleanup(func() { m.Close() })
			masters = append(masters, m)
		}
		flushing(t, s, masters)
	})
}

// TestChaosRestart: Redis killed and started again without persistence — its memory lost —
// while requests wait and jobs run. What must hold: every caller has exactly one outcome by
// its deadline; the limit holds from the restart on (the window before it is lost with the
// rest); service resumes with no restart of the Clients, at the limit within 6s. Jobs and
// their results in Redis are lost with it: a Wait for one ends with ErrJobNotFound or at its
// ctx, and the test reports how many. Waiters whose tickets were lost are measured: if they
// end only at their deadline, the test logs how long they hung on.
func TestChaosRestart(t *testing.T) {
	srv := redistest.Fresh(t)
	s := chaosBase(srv.Client(t), srv.Prefix(t))
	s.nodeRedis = func(int) redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: srv.Addr()}) }
	var restartedAt time.Time
	s.faultFor = 0
	s.after = 8 * time.Second
	s.inject = func() { srv.Restart(t); restartedAt = time.Now() }
	// Waiters whose tickets were lost hold their callers until their deadline (5s), and the
	// load is closed-loop: the limit is served again once they are back.
	s.recoverWithin = 6 * time.Second
	s.memoryLost = true
	res := runChaos(t, s)
	// The requests that were waiting at the restart and ended after it without being served.
	hung := map[string]int{}
	var longest time.Duration
	res.load.mu.Lock()
	for _, o := range res.load.outcomes {
		if o.begun.Before(restartedAt) && o.at.After(restartedAt) && o.kind != "ok" && o.kind != "fn-error" {
			hung[o.kind]++
			longest = max(longest, o.at.Sub(restartedAt))
		}
	}
	res.load.mu.Unlock()
	t.Logf("requests waiting at the restart and not served: %v; the last ended %v after it", hung, longest.Round(time.Millisecond))
}
