package queue

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/track"
)

// batcher sends concurrent calls of one kind, with arguments A and answers R, together: admits
// (Redis.admit), whose flight is one script call that admits every key's (admitAll), enqueues
// of durable jobs (Redis.enqueues) or ends of their runs (Redis.finishes), one script call for
// each key's (enqueueAll, finishAll). Up to maxFlights sends fly at once (enqueueFlights for
// the enqueues, admitFlights for the admits once admitCrowd calls wait). Whoever arrives while
// fewer fly leads: it sends every call pending by then, its own included. Whoever arrives when
// all fly waits; when one lands, the oldest waiter leads the next (unless too few wait for a
// flight beyond the first: then another flight in the air takes them). No goroutine of its
// own, and a lone caller waits for nobody: it sends its call alone (one), from its own
// goroutine. A flight that runs on a goroutine of its own (see
// farDeadline) is counted in flights, for the Client's shutdown.
type batcher[A, R any] struct {
	// one sends a call alone (with solo set, no other flight takes off until it lands); all
	// sends a batch and gives each call its answer; undo undoes
	// what a call did whose answer landed after its caller left (nil: nothing to undo).
	one  func(ctx context.Context, a A) (R, error)
	all  func(ctx context.Context, batch []*batchCall[A, R])
	undo func(a A, rep R, err error)
	// most is how many flights may be in the air at once; 0: maxFlights. crowd: a flight
	// beyond the first takes off only when at least this many calls wait (0: whenever).
	most  int
	crowd int
	// solo, when set, sends in place of all a batch of fewer than crowd calls whose flight is
	// the only one in the air, and no other flight takes off until it lands: a flight alone
	// in the air, of the calls that came before it (the admits' lean way, which may need a
	// second call before answering, relies on it to keep a key's calls in order).
	solo func(ctx context.Context, batch []*batchCall[A, R])

	flights track.Count

	mu sync.Mutex
	// pending, flying and soloFlying (a flight sent by solo is in the air) are guarded by mu;
	// written by every caller of do.
	pending    []*batchCall[A, R]
	flying     int
	soloFlying bool
}

// callArgs is what an admit sends: its Params, ticket and the ticket encoded, and for a job's
// enqueue its record and when it joins its line (0: now).
type callArgs struct {
	p     Params
	t     *Ticket
	raw   []byte
	job   []byte
	runAt int64
}

func (a callArgs) key() string { return a.t.Key }

// keyed is the arguments of a call about one key.
type keyed interface{ key() string }

// admitCall is one admit, or one enqueue, in its batcher.
type admitCall = batchCall[callArgs, AdmitReply]

// batchCall is one call in a batcher, its arguments kept also to undo it should its answer
// land after its caller left.
type batchCall[A, R any] struct {
	a      A
	ctx    context.Context
	rep    R
	err    error
	done   chan struct{} // closed when rep and err are set
	lead   chan struct{} // buffered 1: this call is to send the next batch
	handed bool          // the lead was sent on lead; guarded by batcher.mu
	// state settles who has the answer, whoever comes first: the flight (answered) or the
	// caller who stopped waiting at its deadline (left). A flight that lands after its caller
	// left undoes what the call did (batcher.undo).
	state atomic.Int32
}

// States of a batchCall.
const (
	callWaiting int32 = iota
	callAnswered
	callLeft
)

// maxBatch bounds one flight's calls; maxFlights, the flights in the air at once (of each
// batcher). One: while it flies, the calls that come wait for it to land and then go together,
// which costs Redis and this process less per call than several flights of a few (measured
// with admits on one key at 16 and 128 goroutines: about 1.2 to 2 times the throughput of four
// flights; over 1,000 keys, no worse).
//
// The admits put a second flight in the air only when a crowd waits (admitFlights once
// admitCrowd calls wait): with 128 callers, Redis then works on one flight while this process
// hands out the other's answers; with 16, never that many wait and the flights stay as big as
// with one in the air (two flights whatever the crowd split them: at 16 goroutines on one key,
// 0.20 script calls a request against 0.12 and more Redis CPU a request, no faster). Measured
// with admits at 128 goroutines, two pairs of runs against one flight, alternating
// (TestCompare's fast path, docs/performance.md): about 1.2 times the throughput, on one key
// and over 1,000 keys; at 16 goroutines the same as one flight.
//
// The enqueues fly two at once (enqueueFlights): an enqueue_many call costs Redis more per job
// than an admit's share of admit_many, so a producer waits longer for the flight before its
// own, and with two in the air Redis works on one while the other's replies are read and its
// jobs' records encoded. Measured with 16 producers on one key, five pairs of runs one flight
// against two alternating (TestCompare, "enqueue, 16 producers, no worker"): 24.8–28.5k
// against 28.3–32.0k jobs/s, each pair's two flights the faster, at the same Redis CPU a job
// and 0.12 against 0.19 commands a job.
const (
	maxBatch       = 256
	maxFlights     = 1
	admitFlights   = 2
	admitCrowd     = 32
	enqueueFlights = 2
)

// farDeadline: a deadline further away than this is left to the Redis client's own timeouts,
// which end a call to a dead server well before (go-redis: a few seconds). Nearer ones are
// watched by a timer, with the flight on a goroutine of its own, so that the caller stops
// waiting at its deadline whatever the client does.
const farDeadline = 10 * time.Second

// do sends one call and waits for its answer, or until ctx's deadline when that is near.
func (b *batcher[A, R]) do(ctx context.Context, a A) (R, error) {
	var timeout <-chan time.Time
	if d, ok := ctx.Deadline(); ok && time.Until(d) < farDeadline {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		timeout = t.C
	}
	b.mu.Lock()
	if timeout == nil && len(b.pending) == 0 && b.mayFly(0) {
		// Alone: the call goes at once, from here, with nothing to hand over; with solo set,
		// as a solo flight (one may rely on it as solo does).
		b.flying++
		b.soloFlying = b.solo != nil
		b.mu.Unlock()
		rep, err := b.one(context.WithoutCancel(ctx), a)
		b.mu.Lock()
		b.soloFlying = false
		b.landed()
		b.mu.Unlock()
		return rep, err
	}
	c := &batchCall[A, R]{a: a, ctx: ctx, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	// fly runs a flight: inline when nothing bounds the wait, else on its own goroutine.
	fly := func() {
		if timeout == nil {
			b.fly()
		} else {
			b.goFly()
		}
	}
	b.pending = append(b.pending, c)
	leader := b.mayFly(len(b.pending))
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
			var none R
			return none, ErrNoAnswer
		}
	}
}

// maxFlying is how many flights may be in the air at once.
func (b *batcher[A, R]) maxFlying() int {
	if b.most > 0 {
		return b.most
	}
	return maxFlights
}

// mayFly says whether another flight may take off while waiting calls wait. Called with mu
// held.
func (b *batcher[A, R]) mayFly(waiting int) bool {
	return b.flying == 0 || !b.soloFlying && b.flying < b.maxFlying() && waiting >= b.crowd
}

// answered returns c's answer; a lead handed to c after another flight took it is passed on.
func (b *batcher[A, R]) answered(c *batchCall[A, R]) (R, error) {
	select {
	case <-c.lead:
		b.goFly()
	default:
	}
	return c.rep, c.err
}

// goFly runs a flight on a goroutine of its own, counted in flights.
func (b *batcher[A, R]) goFly() {
	b.flights.Add()
	go func() {
		defer b.flights.Leave()
		b.fly()
	}()
}

// fly sends the pending calls and hands the lead to the oldest call that came meanwhile.
func (b *batcher[A, R]) fly() {
	b.mu.Lock()
	n := min(len(b.pending), maxBatch)
	batch := b.pending[:n:n]
	b.pending = b.pending[n:]
	solo := b.solo != nil && n > 0 && n < b.crowd && b.flying == 1
	b.soloFlying = solo
	b.mu.Unlock()
	if n > 0 { // another leader may have taken every pending call, this one's too
		b.send(batch, solo)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if solo {
		b.soloFlying = false
	}
	b.landed()
}

// landed ends a flight: it hands the lead to the oldest pending call that has none, or, when
// there is none, counts the flight out. Called with mu held.
func (b *batcher[A, R]) landed() {
	if b.flying > 1 && len(b.pending) < b.crowd {
		// Too few wait for a flight of their own: another flight in the air takes them.
		b.flying--
		return
	}
	for _, c := range b.pending {
		if !c.handed { // it stays pending: its own flight takes it
			c.handed = true
			c.lead <- struct{}{}
			return
		}
	}
	b.flying--
}

// send runs a batch, by solo or by all, with the values of its first call's context but none
// of the callers' cancellation: a call sent for one caller must be answered for all. The
// Redis client's own timeouts bound it.
func (b *batcher[A, R]) send(batch []*batchCall[A, R], solo bool) {
	if solo {
		b.solo(context.WithoutCancel(batch[0].ctx), batch)
	} else {
		b.all(context.WithoutCancel(batch[0].ctx), batch)
	}
	for _, c := range batch {
		if !c.state.CompareAndSwap(callWaiting, callAnswered) && b.undo != nil {
			b.flights.Add()
			go func() {
				defer b.flights.Leave()
				b.undo(c.a, c.rep, c.err)
			}()
		}
		close(c.done)
	}
}

// groupCalls splits batch into runs of calls that one script call (an AdmitMany entry, an
// EnqueueMany, a JobDoneMany) may take together: each group holds calls of one key, alike by
// same, in arrival order, and the groups of one key stand in the order of their calls (a key's
// calls unlike them in between start a new group), so that every key's tickets are taken in
// the order they came.
func groupCalls[A keyed, R any](batch []*batchCall[A, R], same func(a, b A) bool) [][]*batchCall[A, R] {
	groups := make([][]*batchCall[A, R], 0, len(batch))
	last := make(map[string]int, len(batch)) // key → its latest group
	for _, c := range batch {
		i, ok := last[c.a.key()]
		if !ok || !same(groups[i][0].a, c.a) {
			i = len(groups)
			last[c.a.key()] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], c)
	}
	return groups
}

// sendGroups sends one script call per group of calls (cmd makes a group's) in one round trip
// and gives each call its answer: answers reads a group's reply into one answer per call, in
// order; an error, of the call or of its reply, is the answer of every call of the group.
func sendGroups[A, R any](ctx context.Context, r *Redis, groups [][]*batchCall[A, R],
	cmd func(g []*batchCall[A, R]) *redis.Cmd, answers func(g []*batchCall[A, R], v any) ([]R, error)) {
	cmds := make([]*redis.Cmd, len(groups))
	for i, g := range groups {
		cmds[i] = cmd(g)
	}
	r.evalPipelined(ctx, cmds)
	for i, g := range groups {
		v, err := cmds[i].Result()
		var reps []R
		if err == nil {
			reps, err = answers(g, v)
		}
		for j, c := range g {
			if err != nil {
				c.err = err
			} else {
				c.rep = reps[j]
			}
		}
	}
}
