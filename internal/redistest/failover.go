package redistest

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// FreshReplicatedCluster starts a private cluster of three masters with a replica each for
// this test, stopped at its cleanup, for tests that fail masters over: a silent master is held
// for failed after 1s (cluster-node-timeout) and its replica then takes over, whatever its
// data's age (cluster-replica-validity-factor 0); the other masters go on serving their slots
// meanwhile (cluster-require-full-coverage no). It returns once every slot is served, every
// replica is in sync and every node knows every replica's master.
func FreshReplicatedCluster(tb testing.TB) *Cluster {
	tb.Helper()
	args := append([]string{"--cluster-require-full-coverage", "no",
		"--cluster-node-timeout", strconv.Itoa(int(freshClusterNodeTimeout.Milliseconds())),
		"--cluster-replica-validity-factor", "0"}, replicationArgs...)
	if err := clusterBinaries(); err != nil {
		unavailable(tb, err)
	}
	c, err := startCluster(1, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.stop)
	return c
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr string
	flags    []string
	master   string   // the id of its master; "-" for a master
	slots    [][2]int // the ranges it serves, ends included
}

// clusterNodes returns the cluster as the node at addr sees it.
func clusterNodes(addr string) ([]clusterNode, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := quick()
	defer cancel()
	s, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("redistest: CLUSTER NODES of %s: %w", addr, err)
	}
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		// <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("redistest: CLUSTER NODES of %s: line %q", addr, line)
		}
		n := clusterNode{id: f[0], flags: strings.Split(f[2], ","), master: f[3]}
		n.addr, _, _ = strings.Cut(f[1], "@")
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") { // a slot being imported or migrated
				continue
			}
			lo, hi, _ := strings.Cut(r, "-")
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if hi == "" {
				b, err2 = a, nil
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("redistest: CLUSTER NODES of %s: slots %q", addr, r)
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func (n clusterNode) is(flag string) bool { return slices.Contains(n.flags, flag) }

func (n clusterNode) serves(slot int) bool {
	return slices.ContainsFunc(n.slots, func(r [2]int) bool { return r[0] <= slot && slot <= r[1] })
}

// awaitReplicas waits until every node sees three masters serving slots and three replicas,
// each of a master (only then can a failover be voted for) and every replica's link is up; it
// numbers the nodes: masters first, the replica of master i at 3+i.
func (c *Cluster) awaitReplicas() error {
	var nodes []clusterNode
	err := poll(20*time.Second, "every node knows every replica", func() (bool, string) {
		for _, a := range c.addrs {
			var err error
			if nodes, err = clusterNodes(a); err != nil {
				return false, err.Error()
			}
			m, r := 0, 0
			for _, n := range nodes {
				if n.is("master") && len(n.slots) > 0 {
					m++
				}
				if n.is("slave") && n.master != "-" {
					r++
				}
			}
			if m != 3 || r != 3 {
				return false, fmt.Sprintf("%s sees %d masters and %d replicas", a, m, r)
			}
		}
		return true, ""
	})
	if err != nil {
		return err
	}
	byAddr, byID := map[string]*Instance{}, map[string]*Instance{}
	for _, n := range c.nodes {
		byAddr[n.addr] = n
	}
	for _, n := range nodes {
		byID[n.id] = byAddr[n.addr]
	}
	var masters, replicas []*Instance
	for _, n := range nodes {
		if n.is("master") && len(n.slots) > 0 {
			masters = append(masters, byAddr[n.addr])
		}
	}
	for _, m := range masters {
		for _, n := range nodes {
			if n.is("slave") && byID[n.master] == m {
				replicas = append(replicas, byAddr[n.addr])
				break
			}
		}
	}
	if len(replicas) != 3 || slices.Contains(replicas, nil) || slices.Contains(masters, nil) {
		return fmt.Errorf("redistest: cluster created with masters %v and replicas %v: %+v", masters, replicas, nodes)
	}
	c.nodes = append(masters, replicas...)
	for i, n := range c.nodes {
		c.addrs[i] = n.addr
	}
	return poll(20*time.Second, "replicas in sync", func() (bool, string) {
		for _, r := range replicas {
			if ok, why := linkUp(r.addr); !ok {
				return false, why
			}
		}
		return true, ""
	})
}

// running returns the numbers of the nodes this harness runs now, but except.
func (c *Cluster) running(except int) []int {
	var r []int
	for i, n := range c.nodes {
		if i != except && n.running() {
			r = append(r, i)
		}
	}
	return r
}

// private fails the test unless the cluster's nodes are this harness's.
func (c *Cluster) private(tb testing.TB) {
	tb.Helper()
	if c.nodes == nil {
		tb.Fatal("redistest: failover helpers need a private cluster, not REDIS_CLUSTER")
	}
}

// slotOf returns the hash slot of {tag}.
func (c *Cluster) slotOf(tb testing.TB, tag string) int {
	tb.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs})
	defer cc.Close()
	ctx, cancel := quick()
	defer cancel()
	s, err := cc.ClusterKeySlot(ctx, "{"+tag+"}").Result()
	if err != nil {
		tb.Fatal(err)
	}
	return int(s)
}

// servedBy returns the number of the node that every running node sees serving slot as a
// master, if that node is running and answers ROLE as a master; else -1 and why not.
func (c *Cluster) servedBy(slot int) (int, string) {
	owner := ""
	for _, i := range c.running(-1) {
		nodes, err := clusterNodes(c.addrs[i])
		if err != nil {
			return -1, err.Error()
		}
		o := ""
		for _, n := range nodes {
			if n.is("master") && !n.is("fail") && n.serves(slot) {
				o = n.addr
			}
		}
		if o == "" || (owner != "" && o != owner) {
			return -1, fmt.Sprintf("%s sees slot %d served by %q (others: %q)", c.addrs[i], slot, o, owner)
		}
		owner = o
	}
	idx := slices.Index(c.addrs, owner)
	if idx < 0 || !c.nodes[idx].running() {
		return -1, fmt.Sprintf("slot %d served by %s, which is not running", slot, owner)
	}
	if r, err := role(owner); err != nil || r != "master" {
		return -1, fmt.Sprintf("slot %d served by %s: role %q %v", slot, owner, r, err)
	}
	return idx, ""
}

// ReplicaOf returns the replica of node i (waiting up to 5s for one to be linked to it).
func (c *Cluster) ReplicaOf(tb testing.TB, i int) *Instance {
	tb.Helper()
	return c.nodes[c.replicaOf(tb, i)]
}

func (c *Cluster) replicaOf(tb testing.TB, i int) int {
	tb.Helper()
	c.private(tb)
	_, port, _ := net.SplitHostPort(c.addrs[i])
	found := -1
	err := poll(5*time.Second, "a replica of "+c.addrs[i], func() (bool, string) {
		for _, j := range c.running(i) {
			f, err := info(c.addrs[j], "replication")
			if err == nil && f["role"] == "slave" && f["master_port"] == port && f["master_link_status"] == "up" {
				found = j
				return true, ""
			}
		}
		return false, "no running node replicates it with its link up"
	})
	if err != nil {
		tb.Fatal(err)
	}
	return found
}

// FailoverReplicaOf runs CLUSTER FAILOVER on the replica of the master that serves {tag} — the
// master stops its clients until the replica has caught up, so nothing acknowledged is lost —
// and waits until the replica is the master of {tag} for every node and for a new cluster
// client. It returns the number of the new master.
func (c *Cluster) FailoverReplicaOf(tb testing.TB, tag string) int {
	tb.Helper()
	m := c.MasterOf(tb, tag)
	r := c.replicaOf(tb, m)
	slot := c.slotOf(tb, tag)
	rdb := redis.NewClient(&redis.Options{Addr: c.addrs[r]})
	defer rdb.Close()
	// A manual failover that is not over within cluster-manual-failover-timeout (5s) is given
	// up by the replica: ask again then.
	for attempt := 1; ; attempt++ {
		ctx, cancel := quick()
		err := rdb.ClusterFailover(ctx).Err()
		cancel()
		if err != nil {
			tb.Fatalf("redistest: CLUSTER FAILOVER on %s: %v", c.addrs[r], err)
		}
		err = poll(6*time.Second, "the replica "+c.addrs[r]+" serves {"+tag+"}", func() (bool, string) {
			return c.promoted(tb, tag, slot, r)
		})
		if err == nil {
			return r
		}
		if attempt == 2 {
			tb.Fatal(err)
		}
		tb.Logf("redistest: %v; asking again", err)
	}
}

// promoted reports whether node r (or, for r < 0, any node) serves slot as a master for every
// running node and for a new cluster client.
func (c *Cluster) promoted(tb testing.TB, tag string, slot, r int) (bool, string) {
	tb.Helper()
	i, why := c.servedBy(slot)
	if i < 0 || (r >= 0 && i != r) {
		return false, why
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs})
	defer cc.Close()
	ctx, cancel := quick()
	defer cancel()
	m, err := cc.MasterForKey(ctx, "{"+tag+"}")
	if err != nil || m.Options().Addr != c.addrs[i] {
		return false, fmt.Sprintf("a new cluster client: %v", err)
	}
	return true, ""
}

// KillMasterOf kills (SIGKILL) the master that serves {tag}, as a crash would, and returns its
// number. Call WaitReplicated before, so that its replica holds what was written to it.
func (c *Cluster) KillMasterOf(tb testing.TB, tag string) int {
	tb.Helper()
	c.private(tb)
	m := c.MasterOf(tb, tag)
	c.nodes[m].Kill()
	return m
}

// WaitPromoted waits up to timeout until a running node serves {tag} as a master for every
// running node and for a new cluster client, and answers ROLE as one; it returns its number.
func (c *Cluster) WaitPromoted(tb testing.TB, tag string, timeout time.Duration) int {
	tb.Helper()
	c.private(tb)
	slot := c.slotOf(tb, tag)
	err := poll(timeout, "a running master of {"+tag+"}", func() (bool, string) { return c.promoted(tb, tag, slot, -1) })
	if err != nil {
		tb.Fatal(err)
	}
	i, _ := c.servedBy(slot)
	return i
}

// WaitReplicated waits until the replica of every running master that has one has acknowledged
// everything its master had written when called, so that it survives a KillMasterOf.
func (c *Cluster) WaitReplicated(tb testing.TB) {
	tb.Helper()
	c.private(tb)
	for _, i := range c.running(-1) {
		f, err := info(c.addrs[i], "replication")
		if err != nil {
			tb.Fatal(err)
		}
		if f["role"] != "master" || f["connected_slaves"] == "0" {
			continue
		}
		if err := waitReplicated(c.addrs[i], 10*time.Second); err != nil {
			tb.Fatal(err)
		}
	}
}
