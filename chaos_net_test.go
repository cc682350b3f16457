package rateltd

import (
	"context"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/faultproxy"
	"github.com/rateltd/rateltd/internal/redistest"
)

// The chaos scenarios of the network: a fault proxy between every node and Redis — one in
// front of the shared server, or one in front of each master of the shared cluster, with the
// nodes' cluster clients dialling each master through its own. Faults of Redis itself are in
// chaos_redis_test.go.

// proxies are the fault proxies of one scenario; a fault applies to all of them.
type proxies []*faultproxy.Proxy

func (ps proxies) each(f func(p *faultproxy.Proxy)) {
	for _, p := range ps {
		f(p)
	}
}

func (ps proxies) heal() { ps.each((*faultproxy.Proxy).Heal) }

// startProxies starts one proxy in front of each of addrs, closed at the test's cleanup (after
// the nodes and their clients).
func startProxies(t *testing.T, addrs []string) (proxies, map[string]string) {
	t.Helper()
	var ps proxies
	via := map[string]string{}
	for _, a := range addrs {
		p, err := faultproxy.Start(a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		ps = append(ps, p)
		via[a] = p.Addr()
	}
	return ps, via
}

// eachTopology runs f as serial subtests (their timing checks want the cores): "redis", the
// shared server behind one proxy, and, unless redisOnly, "cluster", the shared cluster with
// each master behind its own. Every node's go-redis client has default options, as a user's.
func eachTopology(t *testing.T, redisOnly bool, f func(t *testing.T, s chaosSpec, ps proxies)) {
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Server(t)
		ps, via := startProxies(t, []string{srv.Addr()})
		s := chaosBase(srv.Client(t), srv.Prefix(t))
		s.nodeRedis = func(int) redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: via[srv.Addr()]}) }
		f(t, s, ps)
	})
	if redisOnly {
		return
	}
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.SharedCluster(t)
		ps, via := startProxies(t, cl.Addrs())
		s := chaosBase(cl.Client(t), cl.Prefix(t))
		s.nodeRedis = func(int) redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(),
				Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
					if p, ok := via[addr]; ok {
						addr = p
					}
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				}})
		}
		f(t, s, ps)
	})
}

// chaosBase is the timing every scenario starts from: 2s of steady load, the fault, 4s after.
func chaosBase(direct redis.UniversalClient, prefix string) chaosSpec {
	return chaosSpec{direct: direct, prefix: prefix, before: 2 * time.Second, faultFor: 3 * time.Second, after: 4 * time.Second}
}

// TestChaosLatency: 0-50ms of latency on every chunk each way, for 5s. Redis is slow, not
// down: no request fails with ErrUnavailable, every patient caller is served, and the keys
// are at their limit again within 1s of the heal.
func TestChaosLatency(t *testing.T) {
	eachTopology(t, false, func(t *testing.T, s chaosSpec, ps proxies) {
		s.faultFor = 5 * time.Second
		s.inject = func() { ps.each(func(p *faultproxy.Proxy) { p.SetLatency(0, 50*time.Millisecond) }) }
		s.heal = ps.heal
		s.recoverWithin = time.Second
		s.allow = either(noUnavailable, patientServed)
		runChaos(t, s)
	})
}

// TestChaosBandwidth: each connection capped at 4kB/s each way for 4s — a few hundred
// commands a second per connection. Requests may fail (ErrUnavailable by their deadline),
// but each has one outcome, and the limit is served again within 3s of the heal.
func TestChaosBandwidth(t *testing.T) {
	eachTopology(t, false, func(t *testing.T, s chaosSpec, ps proxies) {
		s.faultFor = 4 * time.Second
		s.inject = func() { ps.each(func(p *faultproxy.Proxy) { p.SetBandwidth(4 << 10) }) }
		s.heal = ps.heal
		s.recoverWithin = 3 * time.Second
		runChaos(t, s)
	})
}

// TestChaosResets: every open connection reset (RST) every 100-300ms for 3s, commands in
// flight included. Requests cut off fail with ErrUnavailable by their deadline; each has one
// outcome, no grant is over the limit, and the limit is served again within 3s of the heal.
func TestChaosResets(t *testing.T) {
	eachTopology(t, false, func(t *testing.T, s chaosSpec, ps proxies) {
		s.faultFor = 0
		s.inject = func() {
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
				ps.each(func(p *faultproxy.Proxy) { p.Reset() })
				time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond) // the fault's rhythm
			}
		}
		s.recoverWithin = 3 * time.Second
		runChaos(t, s)
	})
}

// TestChaosBlackhole: for 3s every byte to and from Redis is read and dropped — connections
// are accepted and never answered. Requests fail with ErrUnavailable by their deadline, not
// later; the limit is served again within 7s of the heal (go-redis gives up on a connection
// that never answers after its ReadTimeout, 3s; callers that waited through it come back by
// their 5s deadline; 2.1-5.7s measured).
func TestChaosBlackhole(t *testing.T) {
	for _, dir := range []struct {
		name string
		dir  faultproxy.Direction
	}{{"both", faultproxy.Both}, {"up", faultproxy.Upstream}, {"down", faultproxy.Downstream}} {
		t.Run(dir.name, func(t *testing.T) {
			// Both ways on the cluster too (every master behind its proxy); the one-way
			// blackholes differ from it only in which replies are lost, on one Redis.
			eachTopology(t, dir.name != "both", func(t *testing.T, s chaosSpec, ps proxies) {
				s.inject = func() { ps.each(func(p *faultproxy.Proxy) { p.Blackhole(dir.dir) }) }
				s.heal = ps.heal
				s.after = 9 * time.Second
				s.recoverWithin = 7 * time.Second
				runChaos(t, s)
			})
		})
	}
}

// TestChaosShortDeadlines: beside the patient callers, callers whose ctx ends in 0.2-1ms,
// before Redis can answer through 2-4ms of latency each way. The impatient ones get their
// ctx's error; the patient ones are never failed for it (G12): no ErrUnavailable, every one
// served.
func TestChaosShortDeadlines(t *testing.T) {
	eachTopology(t, false, func(t *testing.T, s chaosSpec, ps proxies) {
		ps.each(func(p *faultproxy.Proxy) { p.SetLatency(2*time.Millisecond, 2*time.Millisecond) })
		s.shortCallers = 2
		s.faultFor = 4 * time.Second
		s.recoverWithin = 3 * time.Second // the short callers go on after the "heal"
		s.allow = func(o outcome) string {
			switch {
			case o.short && o.kind != "timeout":
				return "a caller with a short deadline ended " + o.kind + ", not with its ctx's error"
			case !o.short && o.kind == "unavailable":
				return "ErrUnavailable for a patient caller beside short ones"
			}
			return patientServed(o)
		}
		runChaos(t, s)
	})
}
