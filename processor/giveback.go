package processor

import (
	"context"
	"errors"
	"time"

	"github.com/rateltd/rateltd/queue"
)

// A caller that leaves takes its ticket out of the line (cancel), and a grant nobody will run
// goes back to the window (refund). When Redis does not answer (a blackhole, a reset), the
// step is kept and tried again at each poll until it holds nothing any more: a ticket lapses
// at its deadline, a grant for another node is given back by any processor after the claim
// timeout, and a local grant leaves the key's local grants after twice that. Only steps that
// change nothing when they ran already are kept: a cancel, and the refund of a local grant
// (given back only while it is among the local grants).

// giveBack is one step to try again.
type giveBack struct {
	key   string
	do    func(ctx context.Context) error
	until time.Time // after this, nothing is left for it to give back
}

// maxGiveBacks bounds the steps kept; beyond it the oldest are dropped, and logged.
const maxGiveBacks = 10_000

// later keeps a step that failed, to be tried again at the next polls until until.
func (n *Node) later(key string, until time.Time, do func(ctx context.Context) error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.giveBacks) >= maxGiveBacks {
		n.giveBacks = n.giveBacks[1:]
		n.log.Error("rateltd: processor: too many steps to try again; the oldest is dropped", errTooMany, "key", key)
	}
	n.giveBacks = append(n.giveBacks, giveBack{key: key, do: do, until: until})
}

// retryGiveBacks tries every kept step once; those that fail again are kept until theirs ends.
// Called by the loop at each poll.
func (n *Node) retryGiveBacks(ctx context.Context) {
	n.mu.Lock()
	steps := n.giveBacks
	n.giveBacks = nil
	n.mu.Unlock()
	var keep []giveBack
	for i, g := range steps {
		if time.Now().After(g.until) {
			continue
		}
		bctx, cancel := context.WithTimeout(ctx, backendTimeout)
		err := g.do(bctx)
		cancel()
		if err != nil {
			keep = append(keep, steps[i:]...) // Redis still does not answer: the rest waits too
			break
		}
		n.wakeKey(ctx, g.key)
	}
	if len(keep) > 0 {
		n.mu.Lock()
		n.giveBacks = append(keep, n.giveBacks...)
		n.mu.Unlock()
	}
}

// giveBackLocal gives back a grant of this node's that waits among the key's local grants
// (made by its own grant step, or claimed) and will not run; tried again until it holds.
func (n *Node) giveBackLocal(ctx context.Context, key string, p queue.Params, id []byte, grantedAt int64, raw []byte, cost int64) {
	do := func(ctx context.Context) error { return n.be.Refund(ctx, key, p, id, grantedAt, raw, cost) }
	if err := do(ctx); err != nil {
		n.log.Error("rateltd: processor: refund; to be tried again", err, "key", key)
		n.later(key, n.holdsUntil(0), do)
	}
}

// holdsUntil is how long a ticket due at deadline (server µs; 0 for none) may hold something in
// Redis: until its deadline, or until the local grants let go of a grant made now.
func (n *Node) holdsUntil(deadline int64) time.Time {
	until := time.Now().Add(2*n.cfg.ClaimTimeout + time.Second)
	if d := n.LocalTime(deadline); deadline > 0 && d.After(until) {
		until = d
	}
	return until
}

// errTooMany is logged when steps to try again are dropped.
var errTooMany = errors.New("steps to try again dropped")
