package queue

import (
	"context"
	"fmt"

	"github.com/rateltd/rateltd/lua"
)

// The Redis backend's steps of costs and concurrency caps: settling a grant's cost, renewing
// and releasing slots.

func (r *Redis) Settle(ctx context.Context, key string, p Params, id []byte, grantedAt, charged, actual int64) error {
	if _, err := r.run(ctx, lua.Settle, key, p, id, grantedAt, charged, actual); err != nil {
		return fmt.Errorf("queue: settle %q: %w", key, err)
	}
	return nil
}

func (r *Redis) HoldBack(ctx context.Context, key string, p Params, rate int, remaining, reset int64) (int64, error) {
	v, err := r.run(ctx, lua.HoldBack, key, p, rate, remaining, reset)
	if err == nil {
		var n int64
		if n, err = replyInt(v); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("queue: hold back %q: %w", key, err)
}

func (r *Redis) RenewSlots(ctx context.Context, key string, p Params, ids [][]byte) (int, error) {
	return r.slots(ctx, "renew", key, p, ids)
}

func (r *Redis) ReleaseSlots(ctx context.Context, key string, p Params, ids [][]byte) (int, error) {
	return r.slots(ctx, "release", key, p, ids)
}

func (r *Redis) slots(ctx context.Context, op, key string, p Params, ids [][]byte) (int, error) {
	extra := make([]any, 0, 1+len(ids))
	extra = append(extra, op)
	for _, id := range ids {
		extra = append(extra, id)
	}
	v, err := r.run(ctx, lua.Slots, key, p, extra...)
	if err == nil {
		var n int64
		if n, err = replyInt(v); err == nil {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("queue: %s slots %q: %w", op, key, err)
}
