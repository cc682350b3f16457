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

// Cluster is a Redis Cluster of three masters on loopback, no persistence; with a replica of
// each master when made by FreshReplicatedCluster.
//
// Its nodes are numbered for good: the three masters as started are 0, 1 and 2; the replicas as
// started are 3, 4 and 5, the replica of i being 3+i. Which node serves which slots changes with
// failovers: MasterOf and ReplicaOf ask the cluster each time.
type Cluster struct {
	addrs []string    // of every node, by number
	nodes []*Instance // by number; nil when given by REDIS_CLUSTER
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
		if err := clusterBinaries(); err != nil {
			clusterErr = fmt.Errorf("%w; or set REDIS_CLUSTER (host:port,...) to an existing cluster", err)
			return
		}
		sharedCluster, clusterErr = startCluster(0)
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
	c, err := startCluster(0, "--cluster-require-full-coverage", "no", "--cluster-node-timeout", strconv.Itoa(int(freshClusterNodeTimeout.Milliseconds())))
	if err != nil {
		unavailable(tb, err)
	}
	tb.Cleanup(c.stop)
	return c
}

// freshClusterNodeTimeout is how long the masters of a FreshCluster take to hold a silent one
// for failed.
const freshClusterNodeTimeout = time.Second

// Failed reports whether the other nodes hold node i for failed (as one of them running sees it).
func (c *Cluster) Failed(tb testing.TB, i int) bool {
	tb.Helper()
	other := (i + 1) % len(c.addrs)
	if c.nodes != nil {
		if others := c.running(i); len(others) > 0 {
			other = others[0]
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.addrs[other]})
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

// Node returns node i, to Kill and Restart (private clusters only): a master as started for
// i < 3.
func (c *Cluster) Node(i int) *Instance { return c.nodes[i] }

// MasterOf returns the number of the node that serves the slot of the hash tag {tag}, as a new
// cluster client sees it: after a failover, the promoted replica.
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

// startCluster starts three masters with replicas replicas each (0 or 1), on free ports, with
// extra arguments, and waits until every slot is served (and every replica is in sync).
func startCluster(replicas int, extra ...string) (*Cluster, error) {
	if err := clusterBinaries(); err != nil {
		return nil, err
	}
	// Forming a cluster now and then never ends on a loaded machine (redis-cli waits for the
	// nodes to agree, forever): it is given clusterCreateTimeout, then tried again afresh.
	var err error
	for range 3 {
		var c *Cluster
		if c, err = startClusterOnce(replicas, extra...); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// clusterCreateTimeout bounds one redis-cli --cluster create.
const clusterCreateTimeout = 30 * time.Second

func startClusterOnce(replicas int, extra ...string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "redistest-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for i := range 3 * (1 + replicas) {
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
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
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
	if replicas > 0 {
		if err := c.awaitReplicas(); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) stop() {
	for _, n := range c.nodes {
		n.stop()
	}
}

// clusterBinaries says what is missing to start a cluster, if anything.
func clusterBinaries() error {
	if err := haveBinary(); err != nil {
		return err
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return fmt.Errorf("redistest: redis-cli not found on PATH (apt-get install redis-tools)")
	}
	return nil
}

// Addrs are the nodes' host:port, by number: the masters as started, then their replicas.
func (c *Cluster) Addrs() []string { return c.addrs }

// Client returns a new cluster client with go-redis's default options, closed at the test's
// cleanup.
//
// Such a client learns of a new slot map only from a MOVED or ASK reply, or every 60s
// (ClusterStateReloadInterval): after a master is killed and its replica promoted, it keeps
// dialling the dead master until then. Use ClientWith to set a shorter interval.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	return c.ClientWith(tb, nil)
}

// ClientWith returns a new cluster client of options changed by configure (if not nil) from
// the defaults, closed at the test's cleanup.
func (c *Cluster) ClientWith(tb testing.TB, configure func(*redis.ClusterOptions)) *redis.ClusterClient {
	opt := &redis.ClusterOptions{Addrs: c.addrs}
	if configure != nil {
		configure(opt)
	}
	cc := redis.NewClusterClient(opt)
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// Prefix returns a key prefix of the test's own, as Instance.Prefix does.
func (c *Cluster) Prefix(tb testing.TB) string { return (&Instance{}).Prefix(tb) }
