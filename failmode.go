package rateltd

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/ratelimit"
)

// localLimiter is FailLocal's in-process limit: per key, the key's algorithm with Max (and
// Burst) divided by the expected number of nodes. No line and no priorities: callers sleep
// until the next slot and race for it. It keeps the main rate only, counting requests: not
// costs, further rates or concurrency caps. Safe for concurrent use.
type localLimiter struct {
	nodes int

	mu   sync.Mutex
	wins map[string]*ratelimit.Window // guarded by mu
	seq  uint64                       // sliding-log member ids; guarded by mu
}

// localKeys bounds the windows kept; lapsed ones are dropped when it is reached.
const localKeys = 10_000

func (l *localLimiter) share(lim config.Limit) config.Limit {
	lim.Max = max(1, lim.Max/l.nodes)
	if lim.Algorithm == TokenBucket {
		lim.Burst = max(1, lim.Burst/l.nodes)
	}
	return lim
}

// wait returns when a request for key may start under the local limit, or an error when it
// could not start by deadline, ctx ended (ctx's error) or closing was closed (ErrClosed).
func (l *localLimiter) wait(ctx context.Context, closing <-chan struct{}, key string, lim config.Limit, deadline time.Time) error {
	if lim.NumRates() == 0 {
		return nil // a concurrency cap alone: the local limit keeps rates only
	}
	lim = l.share(lim)
	for {
		l.mu.Lock()
		if l.wins == nil {
			l.wins = map[string]*ratelimit.Window{}
		}
		w := l.wins[key]
		now := time.Now().UnixMicro()
		if w == nil {
			if len(l.wins) >= localKeys {
				for k, w := range l.wins {
					if w.Expire(now); w.Empty() {
						delete(l.wins, k)
					}
				}
			}
			w = &ratelimit.Window{}
			l.wins[key] = w
		}
		if w.Free(lim, now, true) > 0 {
			l.seq++
			w.Record(lim, now, strconv.FormatUint(l.seq, 36))
			l.mu.Unlock()
			return nil
		}
		at := time.UnixMicro(w.Slot(lim, now, 1, 0))
		l.mu.Unlock()
		if at.After(deadline) {
			return fmt.Errorf("%w: key %q: local limit while Redis is unavailable, next start in %v",
				ErrWouldExceedDeadline, key, time.Until(at).Round(time.Millisecond))
		}
		t := time.NewTimer(time.Until(at))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-closing:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
	}
}
