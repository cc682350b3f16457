package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of three masters on loopback, no replicas, no persistence.
type Cluster struct {
	addrs []string
	nodes []*Instance // nil when given by REDIS_CLUSTER
}

var (
	clusterOnce   sync.Once
	sharedCluster *Cluster
	clusterErr    error
)

// SharedCluster returns the test binary's shared cluster, starting it on first use: three
// redis-server --cluster-enabled yes on free ports, joined with redis-cli --cluster create.
// REDIS_CLUSTER (host:port,...) points at an existing cluster instead. Without the binaries
// the test skips, or fails under RATELTD_REQUIRE_REDIS=1.
func SharedCluster(tb testing.TB) *Cluster {
	tb.Helper()
	clusterOnce.Do(func() {
		if addrs := os.Getenv("REDIS_CLUSTER"); addrs != "" {
			sharedCluster = &Cluster{addrs: strings.Split(addrs, ",")}
			return
		}
		sharedCluster, clusterErr = startCluster()
	})
	if clusterErr != nil {
		unavailable(tb, clusterErr)
	}
	return sharedCluster
}

// FreshCluster starts a private three-master cluster for this test, stopped at its cleanup, for
// tests that kill a master: the others go on serving their slots
// (cluster-require-full-coverage no), and a master restarted on its port rejoins.
func FreshCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := startCluster("--cluster-require-full-coverage", "no", "--cluster-node-timeout", strconv.Itoa(int(freshClusterNodeTimeout.Milliseconds())))
	if err != nil {
		unavailable(tb, err)
	}
	tb.Cleanup(c.stop)
	return c
}

// freshClusterNodeTimeout is how long the masters of a FreshCluster take to hold a silent one
// for failed.
const freshClusterNodeTimeout = time.Second

// Failed reports whether the other masters hold master i for failed.
func (c *Cluster) Failed(tb testing.TB, i int) bool {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: c.addrs[(i+1)%len(c.addrs)]})
	defer rdb.Close()
	nodes, err := rdb.ClusterNodes(context.Background()).Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(nodes, "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.HasPrefix(f[1], c.addrs[i]+"@") {
			return slices.Contains(strings.Split(f[2], ","), "fail")
		}
	}
	return false
}

// Node returns the i-th master, to Kill and Restart (private clusters only).
func (c *Cluster) Node(i int) *Instance { return c.nodes[i] }

// MasterOf returns the index of the master that serves the slot of the hash tag {tag}.
func (c *Cluster) MasterOf(tb testing.TB, tag string) int {
	tb.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs})
	defer cc.Close()
	m, err := cc.MasterForKey(context.Background(), "{"+tag+"}")
	if err != nil {
		tb.Fatal(err)
	}
	for i, a := range c.addrs {
		if a == m.Options().Addr {
			return i
		}
	}
	tb.Fatalf("the master of {%s}, %s, is not one of %v", tag, m.Options().Addr, c.addrs)
	return -1
}

func startCluster(extra ...string) (*Cluster, error) {
	if err := haveBinary(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, fmt.Errorf("redistest: redis-cli not found on PATH (apt-get install redis-tools)")
	}
	dir, err := os.MkdirTemp("", "redistest-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for i := range 3 {
		nd := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(nd, 0o755); err != nil {
			return nil, err
		}
		inst, err := start(nd, 0, append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000"}, extra...)...)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, inst)
		c.addrs = append(c.addrs, inst.addr)
	}
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.stop()
		return nil, fmt.Errorf("redistest: redis-cli --cluster create: %v: %s", err, out)
	}
	// Wait until every node sees every slot served.
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range c.addrs {
		rdb := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := rdb.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_slots_ok:16384") {
				break
			}
			if time.Now().After(deadline) {
				rdb.Close()
				c.stop()
				return nil, fmt.Errorf("redistest: cluster not ready within 20s: %v %s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rdb.Close()
	}
	return c, nil
}

func (c *Cluster) stop() {
	for _, n := range c.nodes {
		n.stop()
	}
}

// Addrs are the masters' host:port.
func (c *Cluster) Addrs() []string { return c.addrs }

// Client returns a new cluster client, closed at the test's cleanup.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs})
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// Prefix returns a key prefix of the test's own, as Instance.Prefix does.
func (c *Cluster) Prefix(tb testing.TB) string { return (&Instance{}).Prefix(tb) }
