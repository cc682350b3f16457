package processor

import (
	"context"
	"time"

	"github.com/rateltd/rateltd/config"
)

// Adaptive limits (config.Limit.Adaptive): the fraction of a key's limit in force lives in the
// runtime configuration, shared by every node (queue.Runtime.Factors), and scales every rate
// of the key's limit in Params. An upstream's refusal halves it; an upstream's stated limit
// brings it down to that; a window of successes with no refusal raises it by a tenth, up to
// the whole limit.

// Adapting says what an upstream answered, for an adaptive key.
type Adapting int

const (
	// AdaptRefused: the upstream refused (429, or a RetryAfterError).
	AdaptRefused Adapting = iota + 1
	// AdaptServed: the call succeeded.
	AdaptServed
)

// stated is an upstream's stated limit, as a fraction of the key's, and until when it caps the
// key's growth.
type stated struct {
	f     float64
	until time.Time
}

// statedFor is how many windows an upstream's stated limit caps an adaptive key's growth after
// it was last seen.
const statedFor = 10

const (
	adaptCut   = 0.5   // the factor a refusal multiplies by
	adaptStep  = 0.1   // what a window of successes adds
	adaptFloor = 0.001 // the least fraction: every rate keeps at least 1 anyway
)

// Configured is key's limit as configured, before an adaptive key's factor.
func (n *Node) Configured(key string) config.Limit {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg.limit(key, n.runtime.Limits)
}

// Factor is the fraction of key's limit in force: 1 unless the key is adaptive and cut.
func (n *Node) Factor(key string) float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.factorLocked(key)
}

func (n *Node) factorLocked(key string) float64 {
	if f, ok := n.runtime.Factors[key]; ok && f > 0 && f < 1 {
		return f
	}
	return 1
}

// Adapt applies what the upstream answered to an adaptive key's factor; nothing for another
// key, and nothing written when the factor does not change.
func (n *Node) Adapt(ctx context.Context, key string, a Adapting) {
	n.mu.Lock()
	l := n.cfg.limit(key, n.runtime.Limits)
	f := n.factorLocked(key)
	now := time.Now()
	next := f
	switch {
	case !l.Adaptive:
		n.mu.Unlock()
		return
	case a == AdaptRefused && now.Sub(n.cut[key]) >= l.Window:
		// One cut a window: the refusals of one burst are one signal.
		next = max(adaptFloor, f*adaptCut)
		n.adapted[key], n.cut[key] = now, now
	case a == AdaptRefused:
	case f < 1 && now.Sub(n.adapted[key]) >= l.Window:
		// Not above what the upstream stated lately, whatever the successes.
		ceiling := 1.0
		if c, ok := n.stated[key]; ok && now.Before(c.until) {
			ceiling = c.f
		}
		next = max(f, min(ceiling, f+adaptStep))
		n.adapted[key] = now
	}
	n.mu.Unlock()
	if next != f {
		n.setFactor(ctx, key, next)
	}
}

// AdaptTo brings an adaptive key's factor down to f (an upstream stated a limit of that
// fraction of the configured one); it never raises it.
func (n *Node) AdaptTo(ctx context.Context, key string, f float64) {
	n.mu.Lock()
	l := n.cfg.limit(key, n.runtime.Limits)
	cur := n.factorLocked(key)
	if l.Adaptive {
		// Successes raise the key no higher than this for a while (statedFor windows).
		n.stated[key] = stated{f: f, until: time.Now().Add(statedFor * l.Window)}
	}
	if l.Adaptive && f < cur {
		n.adapted[key] = time.Now()
	}
	n.mu.Unlock()
	if l.Adaptive && f < cur {
		n.setFactor(ctx, key, max(adaptFloor, f))
	}
}

// setFactor stores key's factor and reads the runtime configuration again.
func (n *Node) setFactor(ctx context.Context, key string, f float64) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
	defer cancel()
	if err := n.be.SetRuntimeFactor(bctx, key, f); err != nil {
		n.log.Error("rateltd: processor: adapt the limit", err, "key", key)
		return
	}
	if err := n.RefreshRuntime(bctx); err != nil {
		n.log.Error("rateltd: processor: load runtime config", err, "key", key)
	}
}
