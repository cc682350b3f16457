package rateltd

import (
	"context"
	"errors"
	"fmt"

	"github.com/rateltd/rateltd/processor"
)

// ErrNotSettleable is Settle's error for a ctx that is not the ctx of a request's fn (or a
// durable job's handler) on a key whose limit counts cost units, or for a grant settled
// already.
var ErrNotSettleable = errors.New("rateltd: nothing to settle")

// Settle says, inside a request's fn or a durable job's handler (ctx is the one it was given),
// what the call really cost, when that is known only after it ran: the tokens an LLM call
// used, say. Every rate of the key's limit that counts cost units (Limit.Units, Rate.Units)
// takes the difference from the cost the request was admitted with (WithCost, or 1): less goes
// back, counted as of the grant's time, so that the window is exact; more is charged now, and
// later requests wait it out. A request that never settles keeps its charge. A grant is
// settled once: a second Settle returns ErrNotSettleable, as does a ctx of no request, or of a
// key whose limit counts no units (settling would change nothing). A request that ran in a fail
// mode (Redis out) has no grant to settle: Settle returns nil. actual must not be negative.
func Settle(ctx context.Context, actual int) error {
	s := processor.SettlementOf(ctx)
	if s == nil {
		return fmt.Errorf("%w: ctx is not that of a request's fn or a handler, for a key that counts units", ErrNotSettleable)
	}
	if actual < 0 || actual > 1<<53 {
		return fmt.Errorf("%w: Settle: cost must be from 0 to 2^53, got %d", ErrInvalidConfig, actual)
	}
	ok, err := s.Settle(ctx, int64(actual))
	if !ok {
		return fmt.Errorf("%w: key %q: settled already", ErrNotSettleable, s.Key)
	}
	return err
}
