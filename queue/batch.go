package queue

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rateltd/rateltd/internal/track"
)

// admitBatcher sends concurrent admits together: those of one key (and Params) as one script
// call that admits them all (AdmitMany), and on a single Redis the admits of every key in that
// same call; on a cluster, one call per key, in one pipeline. Up to maxFlights such sends fly
// at once. Whoever arrives while fewer fly leads: it sends every admit pending by then, its own
// included. Whoever arrives when all fly waits; when one lands, the oldest waiter leads the
// next. No goroutine of its own, and a lone caller waits for nobody: it sends its admit alone
// (the Admit script), from its own goroutine. A flight that runs on a goroutine of its own (see
// farDeadline) is counted in flights, for the Client's shutdown.
type admitBatcher struct {
	r *Redis

	flights track.Count

	mu sync.Mutex
	// pending and flying are guarded by mu; written by every caller of do.
	pending []*admitCall
	flying  int
}

// admitCall is one admit in the batcher: the admit's own (p, t, raw), kept also to undo it
// should its answer land after its caller left.
type admitCall struct {
	p      Params
	t      *Ticket
	raw    []byte
	ctx    context.Context
	rep    AdmitReply
	err    error
	done   chan struct{} // closed when rep and err are set
	lead   chan struct{} // buffered 1: this call is to send the next batch
	handed bool          // the lead was sent on lead; guarded by admitBatcher.mu
	// state settles who has the answer, whoever comes first: the flight (answered) or the
	// caller who stopped waiting at its deadline (left). A flight that lands after its caller
	// left undoes what the admit did (Redis.undoAdmit).
	state atomic.Int32
}

// States of an admitCall.
const (
	callWaiting int32 = iota
	callAnswered
	callLeft
)

// maxBatch bounds one flight's admits; maxFlights, the flights in the air at once. One: while
// it flies, the admits that come wait for it to land and then go together, one script call for
// each key's, which costs Redis and this process less per admit than several flights of a few
// (measured on one key at 16 and 128 goroutines: about 1.2 to 2 times the throughput of four
// flights; over 1,000 keys, no worse).
const (
	maxBatch   = 256
	maxFlights = 1
)

// farDeadline: a deadline further away than this is left to the Redis client's own timeouts,
// which end a call to a dead server well before (go-redis: a few seconds). Nearer ones are
// watched by a timer, with the flight on a goroutine of its own, so that the caller stops
// waiting at its deadline whatever the client does.
const farDeadline = 10 * time.Second

// do sends one admit and waits for its answer, or until ctx's deadline when that is near.
func (b *admitBatcher) do(ctx context.Context, p Params, t *Ticket, raw []byte) (AdmitReply, error) {
	var timeout <-chan time.Time
	if d, ok := ctx.Deadline(); ok && time.Until(d) < farDeadline {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		timeout = t.C
	}
	b.mu.Lock()
	if timeout == nil && len(b.pending) == 0 && b.flying < maxFlights {
		// Alone: the admit goes at once, from here, with nothing to hand over.
		b.flying++
		b.mu.Unlock()
		rep, err := b.r.admitOne(context.WithoutCancel(ctx), p, t, raw)
		b.mu.Lock()
		b.landed()
		b.mu.Unlock()
		return rep, err
	}
	c := &admitCall{p: p, t: t, raw: raw, ctx: ctx, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	// fly runs a flight: inline when nothing bounds the wait, else on its own goroutine.
	fly := func() {
		if timeout == nil {
			b.fly()
		} else {
			b.goFly()
		}
	}
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
			return AdmitReply{}, ErrNoAnswer
		}
	}
}

// answered returns c's answer; a lead handed to c after another flight took it is passed on.
func (b *admitBatcher) answered(c *admitCall) (AdmitReply, error) {
	select {
	case <-c.lead:
		b.goFly()
	default:
	}
	return c.rep, c.err
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
	b.landed()
}

// landed ends a flight: it hands the lead to the oldest pending admit that has none, or, when
// there is none, counts the flight out. Called with mu held.
func (b *admitBatcher) landed() {
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
	b.r.admitAll(context.WithoutCancel(batch[0].ctx), batch)
	for _, c := range batch {
		if !c.state.CompareAndSwap(callWaiting, callAnswered) {
			b.flights.Add()
			go func() {
				defer b.flights.Leave()
				b.r.undoAdmit(c.p, c.t, c.raw, c.rep, c.err)
			}()
		}
		close(c.done)
	}
}
