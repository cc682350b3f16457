package processor

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/rateltd/rateltd/queue"
)

// Settlement is what settling the cost of a granted request or job run needs: its key and
// grant, kept in the ctx of fn or of the handler. A Settlement settles once.
type Settlement struct {
	Key   string
	Grant Grant
	// node is nil for a request that ran in a fail mode: it has no grant to settle.
	node    *Node
	settled atomic.Bool
}

type settlementKey struct{}

// WithSettlement returns ctx carrying the settlement of grant g of key, when key's limit has
// a rate that counts units (in the others, settling changes nothing). A zero g (a request run
// in a fail mode) settles nothing.
func (n *Node) WithSettlement(ctx context.Context, key string, g Grant) context.Context {
	l := g.Limit
	if g.At == 0 {
		l = n.Params(key).Limit // no grant: the key's limit as it is
	}
	if !l.HasUnits() {
		return ctx
	}
	s := &Settlement{Key: key, Grant: g}
	if g.At != 0 {
		s.node = n
	}
	return context.WithValue(ctx, settlementKey{}, s)
}

// SettlementOf returns the settlement ctx carries, or nil.
func SettlementOf(ctx context.Context) *Settlement {
	s, _ := ctx.Value(settlementKey{}).(*Settlement)
	return s
}

// Settle settles s at cost actual once: false when it was settled before. A settlement with
// nothing to settle (no grant, or actual equal to the grant's cost) writes nothing. A grant
// settled (written, or equal) is told to Options.ObserveSettle.
func (s *Settlement) Settle(ctx context.Context, actual int64) (bool, error) {
	if !s.settled.CompareAndSwap(false, true) {
		return false, nil
	}
	if s.node == nil {
		return true, nil
	}
	if actual != s.Grant.Cost {
		if err := s.node.settle(ctx, s.Key, s.Grant, actual); err != nil {
			return true, err
		}
	}
	if s.node.cfg.ObserveSettle != nil {
		s.node.cfg.ObserveSettle(SettleRun{Key: s.Key, Cost: s.Grant.Cost, Actual: actual})
	}
	return true, nil
}

// settle changes grant g of key from its cost to actual in every rate that counts units (see
// queue.Backend.Settle). A cost given back may start waiting requests: every node is told.
func (n *Node) settle(ctx context.Context, key string, g Grant, actual int64) error {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
	defer cancel()
	if err := n.be.Settle(bctx, key, n.Params(key), g.ID[:], g.At, g.Cost, actual); err != nil {
		return queue.Failure(ctx, fmt.Sprintf("processor: settle %q", key), err)
	}
	if actual < g.Cost {
		n.wakeKey(bctx, key)
	}
	return nil
}
