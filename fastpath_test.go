package rateltd

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
)

// TestFastPathOneCommand: a request granted at once costs exactly one Redis command, on one
// Redis and on a cluster.
func TestFastPathOneCommand(t *testing.T) {
	for _, kind := range []string{"redis", "cluster"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var rdb redis.UniversalClient
			var prefix string
			if kind == "redis" {
				srv := redistest.Server(t)
				rdb, prefix = srv.Client(t), srv.Prefix(t)
			} else {
				cl := redistest.SharedCluster(t)
				rdb, prefix = cl.Client(t), cl.Prefix(t)
			}
			hook := &redistest.CommandCounter{}
			rdb.AddHook(hook)
			// A long poll keeps the processor's safety net out of the count.
			c, err := New(Config{Redis: rdb, Prefix: prefix, PollInterval: time.Hour, Default: Limit{Max: 1000, Window: time.Minute}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if _, err := c.Request(ctx, "warm", func(context.Context) (any, error) { return nil, nil }); err != nil {
				t.Fatal(err)
			}
			const n = 50
			before := hook.Count()
			for range n {
				if _, err := c.Request(ctx, "fast", func(context.Context) (any, error) { return nil, nil }); err != nil {
					t.Fatal(err)
				}
			}
			if got := hook.Count() - before; got != n {
				t.Fatalf("%d requests sent %d commands, want %d", n, got, n)
			}
		})
	}
}
