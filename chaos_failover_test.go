package rateltd

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
)

// The chaos scenarios of failovers: a Redis Cluster whose masters have a replica each, and a
// master with a replica watched by three sentinels. The nodes reach Redis straight.

// TestChaosClusterFailover: the master of key ca fails over to its replica under load —
// "manual", CLUSTER FAILOVER on the replica, which loses nothing acknowledged; "kill", the
// master killed (SIGKILL) once its replica has caught up, and the replica promoted after the
// cluster's node timeout (1s). Requests may fail with ErrUnavailable while the slot has no
// master; each has one outcome by its deadline, every job's result is delivered, and every key
// is served at its limit again within 3s of the promotion. A manual failover loses nothing,
// so the limit holds throughout and the counters add up; after a kill the writes of the last
// moments may be lost with the master (replication is asynchronous), so the limit is checked
// from the promotion on, as after a restart.
func TestChaosClusterFailover(t *testing.T) {
	for _, kill := range []bool{false, true} {
		name := map[bool]string{false: "manual", true: "kill"}[kill]
		t.Run(name, func(t *testing.T) {
			cl := redistest.FreshReplicatedCluster(t)
			s := chaosBase(cl.Client(t), cl.Prefix(t))
			s.nodeRedis = func(int) redis.UniversalClient {
				return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ClusterStateReloadInterval: time.Second})
			}
			s.faultFor = 0
			s.inject = func() {
				if kill {
					cl.WaitReplicated(t)
					cl.KillMasterOf(t, "ca")
					cl.WaitPromoted(t, "ca", 15*time.Second)
					return
				}
				cl.FailoverReplicaOf(t, "ca")
			}
			s.memoryLost = kill
			s.recoverWithin = 3 * time.Second
			runChaos(t, s)
		})
	}
}

// TestChaosSentinelFailover: the master is killed (SIGKILL) under load once its replica has
// caught up, and the sentinels promote the replica; the nodes' go-redis failover clients find
// it. What holds is what holds after a cluster master is killed: one outcome per request by its
// deadline, every job's result, the limit from the promotion on, and every key served at its
// limit again within 3s of the promotion.
func TestChaosSentinelFailover(t *testing.T) {
	sn := redistest.FreshSentinel(t)
	s := chaosBase(sn.Client(t), sn.Prefix(t))
	s.nodeRedis = func(int) redis.UniversalClient {
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sn.MasterName(), SentinelAddrs: sn.SentinelAddrs()})
	}
	s.faultFor = 0
	var took time.Duration
	s.inject = func() {
		sn.WaitReplicated(t)
		start := time.Now()
		sn.KillMaster(t)
		sn.WaitFailover(t, 15*time.Second)
		took = time.Since(start)
	}
	s.memoryLost = true
	s.recoverWithin = 3 * time.Second
	runChaos(t, s)
	t.Logf("the sentinels promoted the replica %v after the kill", took.Round(10*time.Millisecond))
}
