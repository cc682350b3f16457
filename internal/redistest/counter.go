package redistest

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// CommandCounter is a go-redis hook that counts the commands a client sends, each command of a
// pipeline apart: add it with AddHook, read it with Count. Safe for concurrent use.
type CommandCounter struct{ n atomic.Int64 }

// Count is how many commands the client sent since the hook was added.
func (h *CommandCounter) Count() int64 { return h.n.Load() }

func (h *CommandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *CommandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h *CommandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}
