package rateltd

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
)

// countHook counts the commands a go-redis client sends.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

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
			hook := &countHook{}
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
			before := hook.n.Load()
			for range n {
				if _, err := c.Request(ctx, "fast", func(context.Context) (any, error) { return nil, nil }); err != nil {
					t.Fatal(err)
				}
			}
			if got := hook.n.Load() - before; got != n {
				t.Fatalf("%d requests sent %d commands, want %d", n, got, n)
			}
		})
	}
}
