package queue

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rateltd/rateltd/config"
)

// SilentOutage is how long an admission may go unanswered before Redis counts as out, as it
// does at once for the errors Outage names. The processor gives every admission at least this
// long (less only when its caller's ctx ends sooner), so a shorter silence is the caller's own
// deadline, which tells nothing about Redis.
const SilentOutage = time.Second

// circuitWindow is how long, after Redis failed an admission, the admissions it would serve
// fail at once instead of each waiting for Redis to fail them again; then one tries Redis
// while the others go on failing at once for another window.
const circuitWindow = time.Second

// errCircuitOpen is the error of an admission that did not go to Redis because Redis failed
// lately where it would have gone.
var errCircuitOpen = fmt.Errorf("%w: Redis failed lately; tried again within %v", config.ErrUnavailable, circuitWindow)

// circuit remembers where Redis failed an admission lately. On a Redis Cluster it is kept per
// hash slot: a master that is down fails only the keys it serves, and the others go on.
// Safe for concurrent use.
type circuit struct {
	// until holds, per slot (one entry unless on a cluster), the Unix ns until which Redis
	// counts as out; 0 when it answered since. Written and read by every admission.
	until []atomic.Int64
}

func newCircuit(cluster bool) circuit {
	if cluster {
		return circuit{until: make([]atomic.Int64, clusterSlots)}
	}
	return circuit{until: make([]atomic.Int64, 1)}
}

// of returns the word of key: its cluster slot's, as Redis finds it from the hash tag {key}.
func (c *circuit) of(key string) *atomic.Int64 {
	if len(c.until) == 1 {
		return &c.until[0]
	}
	return &c.until[hashSlot(key)]
}

// open reports whether an admission of key is to fail at once (errCircuitOpen). Once the
// window has passed, the first admission to ask takes the trial: it goes to Redis, and the
// window starts again for the others, so that a Redis still out holds up one caller per
// window (for as long as SilentOutage), not every caller of that moment.
func (c *circuit) open(key string) bool {
	w := c.of(key)
	until := w.Load()
	if until == 0 {
		return false
	}
	now := time.Now().UnixNano()
	if now < until {
		return true
	}
	return !w.CompareAndSwap(until, now+int64(circuitWindow))
}

// record notes how an admission of key ended after waiting for waited: an outage, or no
// answer for SilentOutage, opens the circuit for circuitWindow; an answer closes it. Other
// ends (a pool with no free connection, a shorter silence) leave it as it is.
func (c *circuit) record(key string, err error, waited time.Duration) {
	switch {
	case err == nil:
		// Written only when open, so that the admissions of a healthy Redis do not all
		// write one shared word.
		if w := c.of(key); w.Load() != 0 {
			w.Store(0)
		}
	case Outage(err), errors.Is(err, ErrNoAnswer) && waited >= SilentOutage:
		c.of(key).Store(time.Now().Add(circuitWindow).UnixNano())
	}
}
