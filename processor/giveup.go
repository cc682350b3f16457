package processor

// A caller who stops waiting: its ticket taken out of the line, or its grant given back.

import (
	"context"
	"time"

	"github.com/rateltd/rateltd/queue"
)

// giveUpWait is how long a caller that gave up waits for its ticket to be taken out of the
// line (or its grant given back): long enough for a Redis that answers, short enough that a
// Redis that does not cannot hold the caller.
const giveUpWait = 250 * time.Millisecond

// giveUp takes w's ticket out of the line, or gives back the grant it got, on a goroutine of
// the node's (counted in bg, for the shutdown), waiting for it at most giveUpWait.
func (n *Node) giveUp(ctx context.Context, w *waiter, grant *delivery) {
	done := make(chan struct{})
	n.bg.Add()
	go func() {
		defer n.bg.Leave()
		defer close(done)
		if grant != nil {
			n.refund(ctx, w, *grant)
		} else {
			n.cancel(ctx, w)
		}
	}()
	t := time.NewTimer(giveUpWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// cancel takes w's ticket out of the line, or gives back its grant. A grant given back may let
// the next ticket start now, as may a ticket gone from the line whose cost held the next back:
// the key is looked at again (everywhere for a grant given back, as after a refund).
func (n *Node) cancel(ctx context.Context, w *waiter) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
	defer cancel()
	out, err := n.be.Cancel(bctx, w.p, w.cancelTicket(), w.raw)
	switch {
	case err != nil:
		n.log.Error("rateltd: cancel; to be tried again", err, "key", w.t.Key)
		n.cancelLater(w)
	case out == queue.Refunded:
		n.wakeKey(bctx, w.t.Key)
	case out == queue.Removed && w.p.Limit.HasUnits():
		n.Recheck(w.t.Key)
	}
}

// cancelLater takes w's ticket out of the line at the next polls, until that holds (a cancel
// changes nothing when it ran already).
func (n *Node) cancelLater(w *waiter) {
	n.later(w.t.Key, n.holdsUntil(w.t.Deadline), func(ctx context.Context) error {
		_, err := n.be.Cancel(ctx, w.p, w.cancelTicket(), w.raw)
		return err
	})
}

// refund gives back the grant d that w's caller will not run.
func (n *Node) refund(ctx context.Context, w *waiter, d delivery) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
	defer cancel()
	if d.local {
		n.giveBackLocal(bctx, w.t.Key, w.p, w.t.ID, d.grantedAt, w.raw, w.t.CostOf())
	} else if err := n.be.Refund(bctx, w.t.Key, w.p, w.t.ID, d.grantedAt, nil, w.t.CostOf()); err != nil {
		n.log.Error("rateltd: refund", err, "key", w.t.Key)
	}
	n.wakeKey(bctx, w.t.Key)
}

// wakeKey tells every node that key may grant again (after a refund).
func (n *Node) wakeKey(ctx context.Context, key string) {
	n.Recheck(key)
	if err := n.be.Broadcast(ctx, queue.Event{Kind: queue.EventRecheck, Key: key}); err != nil {
		n.log.Error("rateltd: broadcast", err, "key", key)
	}
}
