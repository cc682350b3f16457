package redistest

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// CommandCounter is a go-redis hook that counts the commands a client sends, each command of a
// pipeline apart: add it with AddHook, read it with Count. Safe for concurrent use.
type CommandCounter struct {
	// Names, when not empty, restricts the count to the commands of these names (lower case:
	// "evalsha", "eval").
	Names []string

	n atomic.Int64
}

// Count is how many commands the client sent since the hook was added.
func (h *CommandCounter) Count() int64 { return h.n.Load() }

func (h *CommandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *CommandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return EachCommand(h.count).ProcessHook(next)
}

func (h *CommandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return EachCommand(h.count).ProcessPipelineHook(next)
}

// EachCommand is a go-redis hook that shows each command a client sends, each command of a
// pipeline apart, to the function, before sending it.
type EachCommand func(cmd redis.Cmder)

func (f EachCommand) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f EachCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { f(cmd); return next(ctx, cmd) }
}

func (f EachCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			f(cmd)
		}
		return next(ctx, cmds)
	}
}

func (h *CommandCounter) count(cmd redis.Cmder) {
	if len(h.Names) == 0 || slices.Contains(h.Names, strings.ToLower(cmd.Name())) {
		h.n.Add(1)
	}
}
