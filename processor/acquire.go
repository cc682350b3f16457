package processor

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// backendTimeout bounds backend calls that must finish even when the caller's ctx is done
// (cancel, refund): without them a ticket or a grant would be left behind.
const backendTimeout = 5 * time.Second

type deliveryKind int

const (
	deliverGrant deliveryKind = iota + 1
	deliverEvicted
	deliverClosed
)

type delivery struct {
	kind      deliveryKind
	grantedAt int64 // server µs, for deliverGrant
	// local: the grant waits among the key's local grants (made by this node's grant step, or
	// claimed), so giving it back is a refund that holds once however often it is sent.
	local bool
}

// ticketID is a ticket's id as a map key: unlike a string of it, it costs no allocation.
type ticketID [16]byte

// newTicketID returns a random (version 4) uuid, as uuid.New does but with no allocation.
func newTicketID() ticketID {
	var id ticketID
	rand.Read(id[:]) // never fails: since Go 1.24 it crashes the program rather
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// waiter is one request of this node waiting in a line.
type waiter struct {
	t   *queue.Ticket
	raw []byte
	// ticket and id hold what t and t.ID point to: one allocation for the request's three.
	ticket queue.Ticket
	id     ticketID
	p      queue.Params
	ch     chan delivery // buffered 1; receives exactly one delivery
	// done is set, under Node.mu, by whoever ends the wait first: a delivery (loop, Stop,
	// Acquire on eviction) or the waiting goroutine giving up.
	done bool
	// queued is set, under Node.mu, once the admit has answered that the ticket waits in
	// line: only then may rejoin put it back in line (before, the admit may still be on its
	// way, and a second admit would make a second grant).
	queued bool
	// lineSuffix is what follows the ticket in its entry of a line served in fair shares, as
	// its latest admit answered (queue.AdmitReply.LineSuffix): with it a cancel finds the
	// entry at once.
	lineSuffix atomic.Pointer[[]byte]
}

// Grant is the permission to run one execution now.
type Grant struct {
	// At is the server time of the grant, µs.
	At int64
	// Queued reports that the request waited in line.
	Queued bool
	// ID is the granted ticket's id and Cost its cost, for Settle; Limit is the limit the
	// grant was made under (zero when none was), so that what follows the grant (a settle, a
	// slot, an adaptive limit) need not resolve it again.
	ID    [16]byte
	Cost  int64
	Limit config.Limit
	// Shadow is, for a grant on a key of a shadow limit, what the limit would have done, and
	// ShadowWait the wait it would have had.
	Shadow     queue.ShadowVerdict
	ShadowWait time.Duration
}

// Request is what Acquire needs to know about one request.
type Request struct {
	Key      string
	Priority config.Priority
	// Timeout, when positive, bounds the wait below the key's QueueTimeout.
	Timeout time.Duration
	// Head queues the request at the head of its priority's line (a retry).
	Head bool
	// Cost is what the request counts against the rates that count units; 0 means 1.
	Cost int64
	// Tenant is whose share of the key's line the request waits in; empty for none.
	Tenant string
	// Decided, when not nil, is called with the admission's Decision when the admission
	// granted or refused the request at once (queue.AdmitReply.Decision), on the calling
	// goroutine before Acquire returns.
	Decided func(queue.Decision)
	// Queued, when not nil, is called when the admission put the request in line, on the
	// calling goroutine before it waits there.
	Queued func()
	// Degradable says that the caller has somewhere else to go when Redis is out (FailOpen,
	// FailLocal): an admit left unanswered for minAdmitWait is then an outage at once, rather
	// than at the request's deadline, so that a Redis client busy retrying a dead server
	// (re-dials, backoffs) cannot spend the request's whole deadline before the fail mode.
	Degradable bool
}

// Deadline is when a request for a key of limit l, started at start, stops waiting: the
// soonest of start plus the key's QueueTimeout, start plus timeout (when positive) and ctx's
// deadline.
func Deadline(ctx context.Context, start time.Time, l config.Limit, timeout time.Duration) time.Time {
	wait := l.QueueTimeout
	if timeout > 0 && timeout < wait {
		wait = timeout
	}
	deadline := start.Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return deadline
}

// Acquire waits until req may run: at once when its key is under the limit and nobody waits,
// else when its turn in line comes. It fails with ErrQueueFull, ErrWouldExceedDeadline,
// ErrEvicted, ErrClosed, ErrUnavailable, a *config.TimeoutError, or ctx's error.
func (n *Node) Acquire(ctx context.Context, req Request) (Grant, error) {
	if err := ctx.Err(); err != nil {
		return Grant{}, ctxError(err, req.Key)
	}
	start := time.Now()
	p := n.Params(req.Key)
	p.Head = req.Head
	if req.Cost > 1 || req.Cost < 0 {
		if err := config.CheckCost(req.Key, p.Limit, req.Cost); err != nil {
			return Grant{}, err
		}
	}
	deadline := Deadline(ctx, start, p.Limit, req.Timeout)
	w := &waiter{p: p, ch: make(chan delivery, 1)}
	w.id = newTicketID()
	w.ticket = queue.Ticket{ID: w.id[:], Key: req.Key, Priority: req.Priority, Enqueued: n.ServerTime(start),
		Deadline: n.ServerTime(deadline), Owner: n.id, Cost: req.Cost}
	if req.Tenant != "" {
		w.ticket.Tenant, w.ticket.Weight = req.Tenant, int64(p.Limit.TenantWeight(req.Tenant))
	}
	t := &w.ticket
	raw, err := t.Encode()
	if err != nil {
		return Grant{}, err
	}
	w.t, w.raw = t, raw
	if !n.register(w) {
		return Grant{}, config.ErrClosed
	}

	// A cancelled caller still gets the admit's answer (so that its ticket is taken back out),
	// but nobody waits for it past the request's deadline: with Redis down, the caller's error
	// comes by its deadline. A ticket queued by an answer that came too late expires at that
	// deadline; if it is granted first, the grant finds no waiter and is refunded. The admit
	// may take a round trip even when the line may not be waited in at all (a timeout of a
	// microsecond means "only if at once"); only the caller's ctx bounds it harder.
	admitBy := deadline
	if floor := start.Add(minAdmitWait); admitBy.Before(floor) || req.Degradable {
		admitBy = floor
	}
	if d, ok := ctx.Deadline(); ok && d.Before(admitBy) {
		admitBy = d
	}
	rep, err := n.admit(ctx, p, t, raw, admitBy)
	if err != nil {
		n.leave(ctx, w)
		if queue.MayHaveRun(err) {
			// The connection failed after the admit was sent: it may have queued the ticket,
			// which would wait for nobody. Take it out (nothing happens if it is not there).
			n.cancelLater(w)
		}
		return Grant{}, admitFailure(ctx, req.Key, start, err)
	}
	n.observe(rep.Now)
	if d, ok := rep.Decision(p.Limit); ok && req.Decided != nil {
		req.Decided(d)
	}
	if rep.Outcome == queue.Granted {
		n.leave(ctx, w)
		n.count(req.Key, queue.CountAdmitted) // counted here, not in the script: the fast path stays short
		return Grant{At: rep.Now, ID: w.id, Cost: t.CostOf(), Limit: p.Limit, Shadow: rep.Shadow,
			ShadowWait: time.Duration(rep.ShadowWait) * time.Microsecond}, nil
	}
	if err := refusal(req.Key, rep); err != nil {
		n.leave(ctx, w)
		return Grant{}, err
	}
	w.keepLineSuffix(rep.LineSuffix)
	n.mu.Lock()
	w.queued = true
	n.mu.Unlock()
	n.queued(ctx, req.Key, rep, t.Deadline)
	if req.Queued != nil {
		req.Queued()
	}

	return n.waitTurn(ctx, w, start, deadline)
}

// waitTurn waits in line for w's delivery until deadline (or ctx's end), and then takes the
// ticket out of the line, or gives back a grant that came as the caller gave up.
func (n *Node) waitTurn(ctx context.Context, w *waiter, start, deadline time.Time) (Grant, error) {
	key := w.t.Key
	wctx, wcancel := context.WithDeadline(ctx, deadline)
	defer wcancel()
	select {
	case d := <-w.ch:
		n.unregister(w)
		g, err := n.outcome(d, key, start)
		g.ID, g.Cost, g.Limit = w.id, w.t.CostOf(), w.p.Limit
		return g, err
	case <-wctx.Done():
	}
	// The caller gave up. Whoever marks the waiter done first decides: if a delivery came
	// first, take it (and give a grant back); otherwise take the ticket out of the line.
	n.mu.Lock()
	delivered := w.done
	w.done = true
	n.mu.Unlock()
	n.unregister(w)
	var grant *delivery
	if delivered {
		if d := <-w.ch; d.kind == deliverGrant {
			grant = &d
		}
	}
	n.giveUp(ctx, w, grant)
	if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Grant{}, &config.TimeoutError{Key: key}
	}
	return Grant{}, ctxError(ctx.Err(), key)
}

// admitFailure is the error of an admit that got no reply, started at start. Redis counts as
// failed (ErrUnavailable) only for a failure of Redis or of the connection (queue.Outage), or
// for no answer in minAdmitWait. An answer that did not come by the request's own, nearer
// deadline, or a ctx that ended, is the request's timeout or ctx's error: it tells nothing
// about Redis, and other requests must not pay for it.
func admitFailure(ctx context.Context, key string, start time.Time, err error) error {
	if errors.Is(err, queue.ErrNoAnswer) {
		if time.Since(start) >= minAdmitWait {
			return fmt.Errorf("processor: admit %q: %w: %w", key, config.ErrUnavailable, err)
		}
		if cerr := ctx.Err(); cerr != nil && !errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("processor: admit %q: %w", key, cerr)
		}
		return &config.TimeoutError{Key: key}
	}
	if cerr := ctx.Err(); cerr != nil {
		return ctxError(cerr, key)
	}
	return queue.Failure(ctx, fmt.Sprintf("processor: admit %q", key), err)
}

// leave ends w without waiting in line: its admit granted at once, refused, or failed. A grant
// delivered to it meanwhile — of an earlier sending of the admit that queued a copy, granted
// and claimed while the admit's answer was on its way — is given back.
func (n *Node) leave(ctx context.Context, w *waiter) {
	n.mu.Lock()
	delivered := w.done
	w.done = true
	delete(n.waiters[w.t.Key], ticketID(w.t.ID))
	n.mu.Unlock()
	if !delivered {
		return
	}
	if d := <-w.ch; d.kind == deliverGrant {
		n.giveUp(ctx, w, &d)
	}
}

// refusal is the error of an admit that neither granted nor queued, nil otherwise.
func refusal(key string, rep queue.AdmitReply) error {
	switch rep.Outcome {
	case queue.Full:
		return fmt.Errorf("%w: key %q", config.ErrQueueFull, key)
	case queue.WouldExceed:
		return fmt.Errorf("%w: key %q: earliest start in %v", config.ErrWouldExceedDeadline, key,
			time.Duration(rep.Earliest-rep.Now)*time.Microsecond)
	}
	return nil
}

// queued follows an admit that queued a ticket due by until (server µs): it tells the owner
// of a ticket evicted to make room, and has the loop grant the key — when the line was empty,
// at the ticket's earliest start, after putting the key in the index and waking every node
// (all in its next step, with the other lines opened meanwhile); when it joined others, at
// once unless the loop has a time for the key already that the ticket cannot beat (the
// tickets ahead keep the key due then: a newcomer does not make it due sooner); else at once,
// for the node to learn when it may grant the key next. A claim is not needed: another node's
// grant of the ticket comes with a wake-up (EventClaim), and the poll claims where one may
// have been lost.
func (n *Node) queued(ctx context.Context, key string, rep queue.AdmitReply, until int64) {
	if rep.Evicted != nil {
		n.evicted(ctx, key, rep.Evicted)
	}
	n.mu.Lock()
	if rep.LineBefore == 0 {
		n.opened = append(n.opened, queue.Activation{Key: key, At: rep.Now, Until: until, Wake: true})
	}
	switch {
	case rep.LineBefore == 0 && rep.Earliest > 0:
		n.dueAt[key] = n.LocalTime(rep.Earliest)
	case rep.LineBefore > 0 && rep.Earliest > rep.Now:
		at := n.LocalTime(rep.Earliest)
		if prev, ok := n.joined[key]; !ok || at.Before(prev) {
			n.joined[key] = at
		}
	default:
		n.pending[key] = struct{}{}
	}
	n.mu.Unlock()
	n.poke()
}

func (n *Node) outcome(d delivery, key string, start time.Time) (Grant, error) {
	switch d.kind {
	case deliverGrant:
		return Grant{At: d.grantedAt, Queued: true}, nil
	case deliverEvicted:
		return Grant{}, fmt.Errorf("%w: key %q", config.ErrEvicted, key)
	}
	return Grant{}, config.ErrClosed
}

func ctxError(err error, key string) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &config.TimeoutError{Key: key}
	}
	return err
}

func (n *Node) register(w *waiter) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	byID := n.waiters[w.t.Key]
	if byID == nil {
		byID = map[ticketID]*waiter{}
		n.waiters[w.t.Key] = byID
	}
	byID[ticketID(w.t.ID)] = w
	return true
}

// unregister removes w. A key's emptied map stays until the next poll (sweepWaiters), so that
// a busy key does not allocate a map per request.
func (n *Node) unregister(w *waiter) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.waiters[w.t.Key], ticketID(w.t.ID))
}

// deliver hands d to the waiter of ticket id, if it still waits; it reports whether it did.
func (n *Node) deliver(key string, id []byte, d delivery) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(id) != len(ticketID{}) {
		return false
	}
	w := n.waiters[key][ticketID(id)]
	if w == nil || w.done {
		return false
	}
	w.done = true
	w.ch <- d
	return true
}

// minAdmitWait is how long an admit may take whatever the request's own timeout, unless the
// caller's ctx ends sooner: as long as the backend lets Redis be silent before it counts as out.
const minAdmitWait = queue.SilentOutage

// admit runs the backend's Admit within the request's deadline. The context carries the
// deadline and ctx's values but no cancellation (a cancelled caller still learns whether its
// ticket was queued), and no timer of its own: the Redis backend stops waiting at the
// deadline, and the client sets it on the connection.
func (n *Node) admit(ctx context.Context, p queue.Params, t *queue.Ticket, raw []byte, deadline time.Time) (queue.AdmitReply, error) {
	return n.be.Admit(deadlineContext{ctx, deadline}, p, t, raw)
}

// deadlineContext reports a deadline, but is never done, whatever its parent (as
// context.WithoutCancel would make it, at the cost of an allocation more per request):
// whoever waits on it checks the deadline itself.
type deadlineContext struct {
	context.Context
	deadline time.Time
}

func (c deadlineContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (deadlineContext) Done() <-chan struct{} { return nil }

func (deadlineContext) Err() error { return nil }

// evicted tells the owner of a ticket dropped from the line (DropOldest) at once.
func (n *Node) evicted(ctx context.Context, key string, raw []byte) {
	t, err := queue.DecodeTicket(raw)
	if err != nil {
		return
	}
	if string(t.Owner) == string(n.id) {
		n.deliver(key, t.ID, delivery{kind: deliverEvicted})
		return
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
	defer cancel()
	if err := n.be.Notify(bctx, t.Owner, queue.Event{Kind: queue.EventClaim, Key: key}); err != nil {
		n.log.Error("rateltd: notify", err, "key", key)
	}
}

// activate records that key has a line and wakes every node's processor to take it up (a
// durable job's line: the node that runs its handler must), waiting for the backend no longer
// than deadline.
func (n *Node) activate(ctx context.Context, key string, at, until int64, deadline time.Time) {
	if limit := time.Now().Add(backendTimeout); limit.Before(deadline) {
		deadline = limit
	}
	bctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	if err := n.be.Activate(bctx, []queue.Activation{{Key: key, At: at, Until: until, Wake: true}}); err != nil {
		n.log.Error("rateltd: activate", err, "key", key)
	}
}
