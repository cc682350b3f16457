package redistest

import (
	"context"
	"testing"
	"time"
)

// TestSentinelFailover: a key written through a failover client (and acknowledged by the
// replica) is read through the same client after the master is killed and the replica
// promoted; the same client writes again.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := FreshSentinel(t)
	rdb := s.Client(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := s.Master(t)
	s.WaitReplicated(t)

	killed := time.Now()
	if s.KillMaster(t) != old {
		t.Fatal("KillMaster killed another server than Master")
	}
	addr := s.WaitFailover(t, 15*time.Second)
	t.Logf("failover: new master %s %v after the kill", addr, time.Since(killed).Round(10*time.Millisecond))
	if addr == old.Addr() || s.Master(t).Addr() != addr {
		t.Fatalf("new master %s; old %s, Master %s", addr, old.Addr(), s.Master(t).Addr())
	}
	eventuallyOK(t, 10*time.Second, "the failover client reads the key", func() error {
		v, err := rdb.Get(ctx, "k").Result()
		if err == nil && v != "before" {
			t.Fatalf("k = %q after the failover, want %q", v, "before")
		}
		return err
	})
	if err := rdb.Set(ctx, "k", "after", 0).Err(); err != nil {
		t.Fatalf("write after the failover: %v", err)
	}
	if got := rdb.Get(ctx, "k").Val(); got != "after" {
		t.Fatalf("k = %q, want after", got)
	}
}

// eventuallyOK fails the test unless f returns nil within d; it logs f's last error.
func eventuallyOK(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	var err error
	deadline := time.Now().Add(d)
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
