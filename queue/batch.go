package queue

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/track"
	"github.com/rateltd/rateltd/lua"
)

// admitBatcher sends concurrent admits in pipelines: one command per request still, but one
// round trip and one read on the server for many. Up to maxFlights pipelines fly at once.
// Whoever arrives while fewer fly leads: it sends every admit pending by then, its own
// included. Whoever arrives when all fly waits; when one lands, the oldest waiter leads the
// next. No goroutine of its own, and a lone caller waits for nobody. A flight that runs on a
// goroutine of its own (see farDeadline) is counted in flights, for the Client's shutdown.
type admitBatcher struct {
	r *Redis

	flights track.Count

	mu sync.Mutex
	// pending and flying are guarded by mu; written by every caller of do.
	pending []*admitCall
	flying  int
}

type admitCall struct {
	key    string
	alg    config.Algorithm
	args   []any
	ctx    context.Context
	v      any
	err    error
	done   chan struct{} // closed when v and err are set
	lead   chan struct{} // buffered 1: this call is to send the next batch
	handed bool          // the lead was sent on lead; guarded by admitBatcher.mu
	// state settles who has the answer, whoever comes first: the flight (answered) or the
	// caller who stopped waiting at its deadline (left). A flight that lands after its caller
	// left undoes what the admit did (Redis.undoAdmit), for which it keeps the admit's own.
	state atomic.Int32
	p     Params
	t     *Ticket
	raw   []byte
}

// States of an admitCall.
const (
	callWaiting int32 = iota
	callAnswered
	callLeft
)

// maxBatch bounds one pipeline; maxFlights, the pipelines in flight at once.
const (
	maxBatch   = 256
	maxFlights = 4
)

// farDeadline: a deadline further away than this is left to the Redis client's own timeouts,
// which end a call to a dead server well before (go-redis: a few seconds). Nearer ones are
// watched by a timer, with the flight on a goroutine of its own, so that the caller stops
// waiting at its deadline whatever the client does.
const farDeadline = 10 * time.Second

// do sends one admit and waits for its answer, or until ctx's deadline when that is near.
// p, t and raw are the admit's, to undo it should its answer land after its caller left.
func (b *admitBatcher) do(ctx context.Context, p Params, t *Ticket, raw []byte, args []any) (any, error) {
	c := &admitCall{key: t.Key, alg: p.Limit.Algorithm, args: args, ctx: ctx, done: make(chan struct{}),
		lead: make(chan struct{}, 1), p: p, t: t, raw: raw}
	var timeout <-chan time.Time
	if d, ok := ctx.Deadline(); ok && time.Until(d) < farDeadline {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		timeout = t.C
	}
	// fly runs a flight: inline when nothing bounds the wait, else on its own goroutine.
	fly := func() {
		if timeout == nil {
			b.fly()
		} else {
			b.goFly()
		}
	}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	leader := b.flying < maxFlights
	if leader {
		b.flying++
	}
	b.mu.Unlock()
	if leader {
		fly()
	}
	for {
		select {
		case <-c.done:
			return b.answered(c)
		case <-c.lead:
			fly()
		case <-timeout:
			if !c.state.CompareAndSwap(callWaiting, callLeft) {
				<-c.done // answered just now: the answer is the caller's
				return b.answered(c)
			}
			// Leave the batcher as if never come: out of pending if still there, and a lead
			// handed here (or about to be, under mu) is passed on.
			b.mu.Lock()
			handed := c.handed
			c.handed = true
			if i := slices.Index(b.pending, c); i >= 0 {
				b.pending = slices.Delete(b.pending, i, i+1)
			}
			b.mu.Unlock()
			if handed {
				select {
				case <-c.lead:
					b.goFly()
				default: // taken above already
				}
			}
			return nil, ErrNoAnswer
		}
	}
}

// answered returns c's answer; a lead handed to c after another flight took it is passed on.
func (b *admitBatcher) answered(c *admitCall) (any, error) {
	select {
	case <-c.lead:
		b.goFly()
	default:
	}
	return c.v, c.err
}

// goFly runs a flight on a goroutine of its own, counted in flights.
func (b *admitBatcher) goFly() {
	b.flights.Add()
	go func() {
		defer b.flights.Leave()
		b.fly()
	}()
}

// fly sends the pending admits and hands the lead to the oldest admit that came meanwhile.
func (b *admitBatcher) fly() {
	b.mu.Lock()
	n := min(len(b.pending), maxBatch)
	batch := b.pending[:n:n]
	b.pending = b.pending[n:]
	b.mu.Unlock()
	if n > 0 { // another leader may have taken every pending admit, this one's too
		b.send(batch)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.pending {
		if !c.handed { // it stays pending: its own flight takes it
			c.handed = true
			c.lead <- struct{}{}
			return
		}
	}
	b.flying--
}

// send runs a batch with the values of its first call's context but none of the callers'
// cancellation: an admit sent for one caller must be answered for all. The Redis client's own
// timeouts bound it.
func (b *admitBatcher) send(batch []*admitCall) {
	b.r.evalBatch(context.WithoutCancel(batch[0].ctx), lua.Admit, batch)
	for _, c := range batch {
		if !c.state.CompareAndSwap(callWaiting, callAnswered) {
			b.flights.Add()
			go func() {
				defer b.flights.Leave()
				b.r.undoAdmit(c.p, c.t, c.raw, c.v, c.err)
			}()
		}
		close(c.done)
	}
}

// evalBatch runs s once per call in one pipeline (evalPipelined: after NOSCRIPT, only the
// calls that got it are sent again).
func (r *Redis) evalBatch(ctx context.Context, s *redis.Script, batch []*admitCall) {
	// EVALSHA built here rather than by evalSHA, from the key names boxed once per key: this is
	// the fast path, and evalSHA would box ten key names per call.
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		keys := r.ks.perKeyArgs(c.key, c.alg)
		a := make([]any, 0, 3+len(keys)+len(c.args))
		a = append(a, "evalsha", s.Hash(), len(keys))
		a = append(a, keys...)
		cmds[i] = redis.NewCmd(ctx, append(a, c.args...)...)
	}
	r.evalPipelined(ctx, cmds)
	for i, c := range batch {
		c.v, c.err = cmds[i].Result()
	}
}
