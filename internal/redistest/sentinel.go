package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is the most common highly available Redis: a master, one replica and three
// sentinels (quorum 2) on loopback, no persistence. A failover takes a few seconds: a master
// silent for 1s is down for a sentinel (down-after-milliseconds), and the sentinels then agree,
// elect a leader and promote the replica.
//
// Its methods may be called from several goroutines.
type Sentinel struct {
	name      string
	data      []*Instance // the master and the replica as started; failovers swap their roles
	sentinels []*Instance

	mu     sync.Mutex // guards master
	master string     // the master's address when last known to the harness: at start, at WaitFailover
}

const (
	sentinelMasterName = "rateltd-test"
	// sentinelDownAfter is how long a silent master takes to be down for a sentinel.
	sentinelDownAfter = time.Second
	// sentinelFailoverTimeout bounds one failover attempt; a failed election is retried after
	// twice this, so it is kept short.
	sentinelFailoverTimeout = 3 * time.Second
	// sentinelReady bounds the start: replica in sync, sentinels aware of one another.
	sentinelReady = 20 * time.Second
)

// FreshSentinel starts a private Sentinel setup for this test, every process stopped at its
// cleanup: a master, a replica (--replicaof) in sync with it, and three sentinels that monitor
// the master and know the replica and one another. Without redis-server the test skips, or
// fails under RATELTD_REQUIRE_REDIS=1.
func FreshSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	if err := haveBinary(); err != nil {
		unavailable(tb, err)
	}
	s := &Sentinel{name: sentinelMasterName}
	tb.Cleanup(s.stop) // registered first, so it runs after the cleanups of Clients made later
	dir := tb.TempDir()
	master, err := start(mkdir(tb, dir, "master"), 0, replicationArgs...)
	if err != nil {
		tb.Fatal(err)
	}
	s.data = append(s.data, master)
	host, port, _ := net.SplitHostPort(master.addr)
	replica, err := start(mkdir(tb, dir, "replica"), 0, append([]string{"--replicaof", host, port}, replicationArgs...)...)
	if err != nil {
		tb.Fatal(err)
	}
	s.data = append(s.data, replica)
	s.master = master.addr
	if err := poll(sentinelReady, "replica in sync", func() (bool, string) { return linkUp(replica.addr) }); err != nil {
		tb.Fatal(err)
	}
	for i := range 3 {
		d := mkdir(tb, dir, "sentinel"+strconv.Itoa(i))
		conf := filepath.Join(d, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(sentinelConf(s.name, host, port)), 0o644); err != nil {
			tb.Fatal(err)
		}
		inst, err := startConf(d, conf, 0, "--sentinel")
		if err != nil {
			tb.Fatal(err)
		}
		s.sentinels = append(s.sentinels, inst)
	}
	if err := poll(sentinelReady, "sentinels ready", s.ready); err != nil {
		tb.Fatal(err)
	}
	return s
}

// sentinelConf is the config file of one sentinel monitoring the master at host:port as name.
// Sentinel rewrites it as it learns (replicas, other sentinels, epochs).
func sentinelConf(name, host, port string) string {
	return fmt.Sprintf(`sentinel resolve-hostnames no
sentinel monitor %[1]s %[2]s %[3]s 2
sentinel down-after-milliseconds %[1]s %[4]d
sentinel failover-timeout %[1]s %[5]d
sentinel parallel-syncs %[1]s 1
`, name, host, port, sentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
}

func mkdir(tb testing.TB, parent, name string) string {
	tb.Helper()
	d := filepath.Join(parent, name)
	if err := os.Mkdir(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	return d
}

// ready reports whether every sentinel holds the master for up, knows its replica and the two
// other sentinels: only then can a failover reach its quorum and elect a leader.
func (s *Sentinel) ready() (bool, string) {
	for _, sn := range s.sentinels {
		m, err := s.sentinelMaster(sn.addr)
		if err != nil {
			return false, err.Error()
		}
		if m["flags"] != "master" || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
			return false, fmt.Sprintf("sentinel %s: flags %q, num-slaves %q, num-other-sentinels %q",
				sn.addr, m["flags"], m["num-slaves"], m["num-other-sentinels"])
		}
	}
	return true, ""
}

// sentinelMaster returns SENTINEL MASTER's fields from the sentinel at addr.
func (s *Sentinel) sentinelMaster(addr string) (map[string]string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer sc.Close()
	ctx, cancel := quick()
	defer cancel()
	m, err := sc.Master(ctx, s.name).Result()
	if err != nil {
		return nil, fmt.Errorf("redistest: SENTINEL MASTER of %s: %w", addr, err)
	}
	return m, nil
}

// MasterName is the name the sentinels know the master by.
func (s *Sentinel) MasterName() string { return s.name }

// SentinelAddrs are the sentinels' host:port.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		addrs[i] = sn.addr
	}
	return addrs
}

// Client returns a new go-redis failover client — it finds the master through the sentinels
// and follows failovers — closed at the test's cleanup.
func (s *Sentinel) Client(tb testing.TB) *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.name, SentinelAddrs: s.SentinelAddrs()})
	tb.Cleanup(func() { c.Close() })
	return c
}

// Prefix returns a key prefix of the test's own, as Instance.Prefix does.
func (s *Sentinel) Prefix(tb testing.TB) string { return (&Instance{}).Prefix(tb) }

// Master returns the current master: the data server whose address every running sentinel
// gives for the master (waiting up to 10s for them to agree).
func (s *Sentinel) Master(tb testing.TB) *Instance {
	tb.Helper()
	var addr string
	err := poll(10*time.Second, "sentinels agree on the master", func() (bool, string) {
		var why string
		addr, why = s.agreed()
		return addr != "", why
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range s.data {
		if d.addr == addr {
			return d
		}
	}
	tb.Fatalf("redistest: the sentinels' master %s is none of the data servers", addr)
	return nil
}

// agreed returns the master's address that every running sentinel gives, or "" and why not.
func (s *Sentinel) agreed() (string, string) {
	addr := ""
	for _, sn := range s.sentinels {
		if !sn.running() {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.addr, MaxRetries: -1})
		ctx, cancel := quick()
		hp, err := sc.GetMasterAddrByName(ctx, s.name).Result()
		cancel()
		sc.Close()
		if err != nil || len(hp) != 2 {
			return "", fmt.Sprintf("sentinel %s: %v %v", sn.addr, hp, err)
		}
		a := net.JoinHostPort(hp[0], hp[1])
		if addr != "" && a != addr {
			return "", fmt.Sprintf("sentinels disagree: %s and %s", addr, a)
		}
		addr = a
	}
	if addr == "" {
		return "", "no sentinel running"
	}
	return addr, ""
}

// WaitReplicated waits until the replica has acknowledged everything the current master had
// written when called, so that what was written survives a KillMaster.
func (s *Sentinel) WaitReplicated(tb testing.TB) {
	tb.Helper()
	if err := waitReplicated(s.Master(tb).addr, 10*time.Second); err != nil {
		tb.Fatal(err)
	}
}

// KillMaster kills the current master (SIGKILL), as a crash would, and returns it (to Restart:
// the sentinels then make it a replica of the new master).
func (s *Sentinel) KillMaster(tb testing.TB) *Instance {
	tb.Helper()
	m := s.Master(tb)
	m.Kill()
	return m
}

// WaitFailover waits up to timeout until every running sentinel gives one new master address
// (not the master known before: at start or at the previous WaitFailover) and the server there
// answers ROLE as a master; it returns that address.
func (s *Sentinel) WaitFailover(tb testing.TB, timeout time.Duration) string {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var addr string
	err := poll(timeout, "failover away from "+s.master, func() (bool, string) {
		a, why := s.agreed()
		if a == "" {
			return false, why
		}
		if a == s.master {
			return false, "sentinels still give " + a
		}
		r, err := role(a)
		if err != nil || r != "master" {
			return false, fmt.Sprintf("new master %s: role %q %v", a, r, err)
		}
		addr = a
		return true, ""
	})
	if err != nil {
		tb.Fatal(err)
	}
	s.master = addr
	return addr
}

// stop stops the sentinels first, so that they do not fail over a master being stopped.
func (s *Sentinel) stop() {
	for _, sn := range s.sentinels {
		sn.stop()
	}
	for _, d := range s.data {
		d.stop()
	}
}
