package redistest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func TestSharedServerAnswers(t *testing.T) {
	srv := Server(t)
	if err := srv.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if Server(t) != srv {
		t.Fatal("Server returned a second instance")
	}
	if a, b := srv.Prefix(t), srv.Prefix(t); a == b {
		t.Fatalf("two prefixes are equal: %s", a)
	}
}

func TestFreshKillRestart(t *testing.T) {
	srv := Fresh(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered after Kill")
	}
	srv.Restart(t)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart on the same port: %v", err)
	}
	if n := rdb.Exists(ctx, "k").Val(); n != 0 {
		t.Fatal("data survived a restart without persistence")
	}
}

func TestClusterServesEverySlot(t *testing.T) {
	cl := SharedCluster(t)
	cc := cl.Client(t)
	ctx := context.Background()
	var mu sync.Mutex
	masters := map[string]bool{}
	for _, k := range []string{"{a}x", "{b}x", "{c}x", "{d}x", "{e}x", "{f}x"} {
		if err := cc.Set(ctx, k, "1", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		masters[c.Options().Addr] = true
		return nil
	})
	if err != nil || len(masters) != 3 {
		t.Fatalf("masters %v, %v", masters, err)
	}
}
