package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestReplicatedClusterNumbering: nodes 0-2 are masters serving slots, node 3+i replicates
// node i.
func TestReplicatedClusterNumbering(t *testing.T) {
	t.Parallel()
	cl := FreshReplicatedCluster(t)
	if len(cl.Addrs()) != 6 {
		t.Fatalf("%d nodes, want 6", len(cl.Addrs()))
	}
	for i := range 3 {
		if r := cl.ReplicaOf(t, i); r != cl.Node(3+i) {
			t.Errorf("ReplicaOf(%d) = %s, want node %d, %s", i, r.Addr(), 3+i, cl.Node(3+i).Addr())
		}
		if ok, err := role(cl.Addrs()[i]); err != nil || ok != "master" {
			t.Errorf("node %d: role %q %v", i, ok, err)
		}
	}
}

// TestClusterFailoverReplica: CLUSTER FAILOVER on the replica of a key's master; the key
// written before is read through the same cluster client after it, written again, and
// MasterOf names the promoted replica.
func TestClusterFailoverReplica(t *testing.T) {
	t.Parallel()
	cl := FreshReplicatedCluster(t)
	cc := cl.Client(t)
	ctx := context.Background()
	key := "{busy}k"
	if err := cc.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m := cl.MasterOf(t, "busy")
	replica := cl.ReplicaOf(t, m)
	start := time.Now()
	r := cl.FailoverReplicaOf(t, "busy")
	t.Logf("CLUSTER FAILOVER: node %d took over from node %d in %v", r, m, time.Since(start).Round(10*time.Millisecond))
	if cl.Node(r) != replica || cl.MasterOf(t, "busy") != r {
		t.Fatalf("new master %d, MasterOf %d; the replica was %s", r, cl.MasterOf(t, "busy"), replica.Addr())
	}
	if got, err := cc.Get(ctx, key).Result(); err != nil || got != "before" {
		t.Fatalf("%s after the failover: %q %v, want before", key, got, err)
	}
	if err := cc.Set(ctx, key, "after", 0).Err(); err != nil {
		t.Fatalf("write after the failover: %v", err)
	}
	// The old master is now the new one's replica.
	if cl.ReplicaOf(t, r) != cl.Node(m) {
		t.Fatalf("the replica of the new master is %s, want the old master %s", cl.ReplicaOf(t, r).Addr(), cl.Node(m).Addr())
	}
}

// TestClusterMasterKilled: a master killed after its replica acknowledged a key; the replica
// takes over and the same cluster client reads the key and writes again; keys of the other
// masters are served throughout. The client reloads its slot map every second: a dead master
// answers no MOVED, and go-redis reloads otherwise only every 60s.
func TestClusterMasterKilled(t *testing.T) {
	t.Parallel()
	cl := FreshReplicatedCluster(t)
	cc := cl.ClientWith(t, func(o *redis.ClusterOptions) { o.ClusterStateReloadInterval = time.Second })
	ctx := context.Background()
	other := "x"
	for i := 0; cl.MasterOf(t, other) == cl.MasterOf(t, "dead"); i++ {
		other = "x" + string(rune('a'+i))
	}
	for _, k := range []string{"{dead}k", "{" + other + "}k"} {
		if err := cc.Set(ctx, k, "before", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cl.WaitReplicated(t)
	killed := time.Now()
	m := cl.KillMasterOf(t, "dead")
	if err := cc.Set(ctx, "{"+other+"}k", "during", 0).Err(); err != nil {
		t.Fatalf("a key of a live master while another is down: %v", err)
	}
	r := cl.WaitPromoted(t, "dead", 15*time.Second)
	t.Logf("master %d killed: node %d serves its slots %v later", m, r, time.Since(killed).Round(10*time.Millisecond))
	if r == m || cl.MasterOf(t, "dead") != r {
		t.Fatalf("promoted %d, MasterOf %d, killed %d", r, cl.MasterOf(t, "dead"), m)
	}
	eventuallyOK(t, 10*time.Second, "the cluster client reads the key", func() error {
		v, err := cc.Get(ctx, "{dead}k").Result()
		if err == nil && v != "before" {
			t.Fatalf("{dead}k = %q after the failover, want before", v)
		}
		return err
	})
	if err := cc.Set(ctx, "{dead}k", "after", 0).Err(); err != nil {
		t.Fatalf("write after the failover: %v", err)
	}
}
