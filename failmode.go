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

// redisRetry is how long after Redis failed a request requests go straight to the fail mode
// before trying Redis again.
const redisRetry = time.Second

// outage tracks whether Redis answered lately. Safe for concurrent use.
// On a Redis Cluster it tracks each hash slot apart: a master that is down fails only the keys
// it serves, and the others go on.
type outage struct {
	// until holds, per slot (one entry unless on a cluster), the Unix ns until which Redis
	// counts as down; 0 when up.
	until []atomic.Int64
}

// clusterSlots is how many hash slots a Redis Cluster has.
const clusterSlots = 16384

func newOutage(cluster bool) outage {
	if cluster {
		return outage{until: make([]atomic.Int64, clusterSlots)}
	}
	return outage{until: make([]atomic.Int64, 1)}
}

// of returns the word of key: its cluster slot's, as Redis finds it from the hash tag {key}.
func (o *outage) of(key string) *atomic.Int64 {
	if len(o.until) == 1 {
		return &o.until[0]
	}
	return &o.until[crc16(key)%clusterSlots]
}

func (o *outage) down(key string) bool {
	until := o.of(key).Load()
	return until != 0 && time.Now().UnixNano() < until
}

func (o *outage) failed(key string) { o.of(key).Store(time.Now().Add(redisRetry).UnixNano()) }

// answered clears a failure; it writes only when there is one, so that the requests of a
// healthy Client do not all write one shared word.
func (o *outage) answered(key string) {
	if w := o.of(key); w.Load() != 0 {
		w.Store(0)
	}
}

// crc16 is the CRC16 of Redis Cluster's key hashing (CCITT, XMODEM): a key's slot is
// crc16(hash tag) mod 16384.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
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
