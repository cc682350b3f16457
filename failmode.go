package rateltd

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/ratelimit"
)

// FailMode is what a request does when Redis cannot be reached; see [config.FailMode].
type FailMode = config.FailMode

// Fail modes.
const (
	FailClosed = config.FailClosed
	FailOpen   = config.FailOpen
	FailLocal  = config.FailLocal
)

// redisRetry is how long after Redis failed a request requests go straight to the fail mode
// before trying Redis again.
const redisRetry = time.Second

// outage tracks whether Redis answered lately. Safe for concurrent use.
type outage struct {
	until atomic.Int64 // Unix ns until which Redis counts as down; 0 when up
}

func (o *outage) down() bool {
	until := o.until.Load()
	return until != 0 && time.Now().UnixNano() < until
}

func (o *outage) failed() { o.until.Store(time.Now().Add(redisRetry).UnixNano()) }

// answered clears a failure; it writes only when there is one, so that the requests of a
// healthy Client do not all write one shared word.
func (o *outage) answered() {
	if o.until.Load() != 0 {
		o.until.Store(0)
	}
}

// localLimiter is FailLocal's in-process limit: per key, the key's algorithm with Max (and
// Burst) divided by the expected number of nodes. No line and no priorities: callers sleep
// until the next slot and race for it. Safe for concurrent use.
type localLimiter struct {
	nodes int

	mu   sync.Mutex
	wins map[string]*ratelimit.Window // guarded by mu
	seq  uint64                       // sliding-log member ids; guarded by mu
}

// localKeys bounds the windows kept; lapsed ones are dropped when it is reached.
const localKeys = 10_000

func (l *localLimiter) share(lim Limit) Limit {
	lim.Max = max(1, lim.Max/l.nodes)
	if lim.Algorithm == TokenBucket {
		lim.Burst = max(1, lim.Burst/l.nodes)
	}
	return lim
}

// wait returns when a request for key may start under the local limit, or an error when it
// could not start by deadline or ctx ended.
func (l *localLimiter) wait(ctx context.Context, key string, lim Limit, deadline time.Time) error {
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
		case <-t.C:
		}
	}
}
