package redistest

import (
	"context"
	"testing"
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
