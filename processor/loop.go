package processor

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/rateltd/rateltd/queue"
)

// keyState is the loop's schedule for one key with a line. Only the loop goroutine touches it.
type keyState struct {
	// next is when to grant the key again, local time; zero means "when woken or polled".
	next time.Time
}

// maxPipeline bounds how many keys one backend round trip grants.
const maxPipeline = 128

// loop is the node's processor goroutine. It sleeps until the next slot of any key frees, a
// wake-up arrives or the poll interval passes, then grants every due key in batches.
func (n *Node) loop(events <-chan queue.Event, stopListen func(), ready chan<- struct{}) {
	defer close(n.done)
	defer stopListen()
	keys := map[string]*keyState{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextPoll time.Time
	for {
		select {
		case <-n.stop:
			return
		case ev, ok := <-events:
			if !ok {
				events = nil // the listener ended; polling carries on alone
				continue
			}
			n.handle(ev)
			if !n.handleWaiting(events) {
				events = nil
			}
		case <-n.wake:
		case <-timer.C:
		}
		select {
		case <-n.stop: // Stop came with another event: grant nothing more
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.PollInterval+backendTimeout)
		now := time.Now()
		if !now.Before(nextPoll) {
			nextPoll = now.Add(n.cfg.PollInterval)
			n.poll(ctx, keys, nextPoll)
		} else if n.advertising() {
			n.advertiseHandlers(ctx)
		}
		n.step(ctx, keys)
		cancel()

		wakeAt := nextPoll
		for _, ks := range keys {
			if !ks.next.IsZero() && ks.next.Before(wakeAt) {
				wakeAt = ks.next
			}
		}
		timer.Reset(max(time.Until(wakeAt), 0))
		if ready != nil {
			close(ready)
			ready = nil
		}
	}
}

// maxEvents bounds the events one pass of the loop handles before it grants.
const maxEvents = 4096

// handleWaiting handles the events already waiting, up to maxEvents, so that one step grants
// for a burst of wake-ups rather than one step each. It reports false once events is closed.
func (n *Node) handleWaiting(events <-chan queue.Event) bool {
	for range maxEvents {
		select {
		case ev, ok := <-events:
			if !ok {
				return false
			}
			n.handle(ev)
		default:
			return true
		}
	}
	return true
}

// advertising reports whether the node's handlers changed since it last recorded them.
func (n *Node) advertising() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.advertise
}

func (n *Node) handle(ev queue.Event) {
	switch ev.Kind {
	case queue.EventQueued:
		if c := n.announced[ev.Key]; c > 0 {
			// The echo of this node's own wake-up: it scheduled the key when it sent it.
			if n.announced[ev.Key] = c - 1; c == 1 {
				delete(n.announced, ev.Key)
			}
			return
		}
		n.mu.Lock()
		n.pending[ev.Key] = struct{}{}
		n.mu.Unlock()
	case queue.EventRecheck:
		n.Recheck(ev.Key)
	case queue.EventJobDone:
		n.jobDone(ev.Key)
	case queue.EventJobCancel:
		n.renewNow(ev.Key)
	case queue.EventClaim:
		n.mu.Lock()
		n.claims[ev.Key] = struct{}{}
		n.mu.Unlock()
	case queue.EventRuntime:
		ctx, cancel := context.WithTimeout(context.Background(), backendTimeout)
		if err := n.RefreshRuntime(ctx); err != nil {
			n.log.Error("rateltd: processor: load runtime config", err)
		}
		cancel()
		// A pause or limit may have changed: every key is due.
		n.mu.Lock()
		n.all = true
		n.mu.Unlock()
	}
}

// poll is the safety net: it reloads the runtime configuration, makes due every key of the
// index and every key this node waits on that is not to be granted before the next poll (at
// horizon) anyway, claims for every key this node waits on where a claim could find anything,
// and writes pending counts. So each key with a line is looked at once a poll interval at
// least, whatever wake-ups were lost, and the poll's work grows with the keys it could serve,
// not with all keys.
func (n *Node) poll(ctx context.Context, keys map[string]*keyState, horizon time.Time) {
	if err := n.RefreshRuntime(ctx); err != nil {
		n.log.Error("rateltd: processor: load runtime config", err)
	}
	n.checkLiveness(ctx)
	n.renewSlots(ctx)
	n.retryGiveBacks(ctx)
	n.advertiseHandlers(ctx)
	active, err := n.be.ActiveKeys(ctx)
	if err != nil {
		n.log.Error("rateltd: processor: read active keys", err)
	}
	unscheduled := func(k string) bool {
		ks := keys[k]
		return ks == nil || ks.next.IsZero() || ks.next.After(horizon)
	}
	n.mu.Lock()
	for _, k := range active {
		if unscheduled(k) {
			n.pending[k] = struct{}{}
		}
	}
	for k := range keys {
		if unscheduled(k) {
			n.pending[k] = struct{}{}
		}
	}
	var waited []string
	for k, byID := range n.waiters {
		if len(byID) == 0 {
			delete(n.waiters, k)
			continue
		}
		// A node grants every key it waits on, whether or not the index still lists it.
		if unscheduled(k) {
			n.pending[k] = struct{}{}
		}
		waited = append(waited, k)
	}
	for k := range n.claimAgain {
		n.claims[k] = struct{}{}
	}
	clear(n.claimAgain)
	n.mu.Unlock()
	clear(n.announced)
	n.forgetIndexed(n.ServerTime(time.Now()))
	n.claimWhereAny(ctx, waited)
	_ = n.flushCounts(ctx) // logged
}

// claimWhereAny asks the next step to claim for those of keys where other nodes' grants or
// evictions wait (all of them when the backend cannot tell): a lost wake-up of another node's
// (EventClaim) costs a poll interval at most.
func (n *Node) claimWhereAny(ctx context.Context, keys []string) {
	found, err := n.be.Claimable(ctx, keys)
	if err != nil {
		n.log.Error("rateltd: processor: look for grants to claim", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, k := range keys {
		if err != nil || found[i] {
			n.claims[k] = struct{}{}
		}
	}
}

// step announces the lines opened since the last step, grants every due key and claims for
// every key that asked.
func (n *Node) step(ctx context.Context, keys map[string]*keyState) {
	n.mu.Lock()
	opened := n.opened
	n.opened = nil
	all := n.all
	n.all = false
	for k, at := range n.dueAt {
		if ks := keys[k]; ks == nil {
			keys[k] = &keyState{next: at}
		} else if !ks.next.IsZero() && at.Before(ks.next) {
			ks.next = at
		}
	}
	clear(n.dueAt)
	for k := range n.pending {
		if keys[k] == nil {
			keys[k] = &keyState{}
		}
		keys[k].next = time.Time{}
	}
	clear(n.pending)
	claims := make([]string, 0, len(n.claims))
	for k := range n.claims {
		claims = append(claims, k)
	}
	clear(n.claims)
	n.mu.Unlock()
	n.announceOpened(ctx, opened)

	now := time.Now()
	var due []string
	for k, ks := range keys {
		if all || ks.next.IsZero() || !ks.next.After(now) {
			due = append(due, k)
		}
	}
	for len(due) > 0 {
		chunk := due[:min(len(due), maxPipeline)]
		due = due[len(chunk):]
		n.grant(ctx, keys, chunk)
	}
	for len(claims) > 0 {
		chunk := claims[:min(len(claims), maxPipeline)]
		claims = claims[len(chunk):]
		n.claim(ctx, chunk)
	}
}

// announceOpened puts the keys of lines opened in the index and wakes every node for them, in
// one round trip, noting the wake-ups whose echo the loop is to skip.
func (n *Node) announceOpened(ctx context.Context, opened []queue.Activation) {
	if len(opened) == 0 {
		return
	}
	if err := n.be.Activate(ctx, opened); err != nil {
		n.log.Error("rateltd: activate", err, "keys", len(opened))
		return
	}
	for _, a := range opened {
		n.announced[a.Key]++
	}
}

// grant runs the grant step for keys in one round trip and delivers what it granted.
// deliverLocal hands a grant made at grantedAt to this node's waiter of raw. A grant nobody
// waits for any more goes back to the window. So does the grant of a ticket the script took
// but Go cannot read (the script reads fewer of its fields): it is counted as corrupt and
// logged, since nobody can be told.
func (n *Node) deliverLocal(ctx context.Context, key string, p queue.Params, raw []byte, grantedAt int64) {
	t, err := queue.DecodeTicket(raw)
	var id []byte
	switch {
	case err != nil:
		n.count(key, queue.CountCorrupt)
		n.log.Error("rateltd: processor: granted ticket unreadable; its grant is given back", err, "key", key)
		id = queue.TicketID(raw)
	case !n.deliver(key, t.ID, delivery{kind: deliverGrant, grantedAt: grantedAt, local: true}):
		id = t.ID // its caller left
	default:
		return
	}
	if id == nil {
		return // no id, no grant to find: the script records grants under the ticket's id
	}
	cost := int64(1)
	if t != nil {
		cost = t.CostOf()
	}
	n.giveBackLocal(ctx, key, p, id, grantedAt, raw, cost)
}

func (n *Node) grant(ctx context.Context, keys map[string]*keyState, chunk []string) {
	ps := make([]queue.Params, len(chunk))
	for i, k := range chunk {
		ps[i] = n.Params(k)
	}
	reps, errs := n.be.Grant(ctx, chunk, ps, n.grantArgs(chunk))
	var emptied []string // keys whose line the step emptied, to leave the index
	var before []int64
	var leased []string // keys the step granted jobs of, to stay in the index
	var leasedAt int64
	for i, k := range chunk {
		ks := keys[k]
		if errs[i] != nil {
			n.log.Error("rateltd: processor: grant", errs[i], "key", k)
			ks.next = time.Now().Add(n.cfg.PollInterval)
			// The step may have run and its reply been lost: the grants it made for this
			// node's tickets wait among the key's local grants, to be claimed.
			n.mu.Lock()
			n.claims[k] = struct{}{}
			n.mu.Unlock()
			continue
		}
		rep := reps[i]
		n.observe(rep.Now)
		if n.granted(ctx, k, ps[i], rep) {
			leased = append(leased, k)
			leasedAt = max(leasedAt, rep.Now)
		}
		for _, raw := range rep.Local {
			n.deliverLocal(ctx, k, ps[i], raw, rep.Now)
		}
		n.noteOwners(rep.Remote)
		for _, owner := range rep.Remote {
			if err := n.be.Notify(ctx, owner, queue.Event{Kind: queue.EventClaim, Key: k}); err != nil {
				n.log.Error("rateltd: processor: notify", err, "key", k)
			}
		}
		switch {
		case rep.Next == 0:
			delete(keys, k)
			emptied, before = append(emptied, k), append(before, rep.Now)
		case rep.Next == queue.PausedForever:
			ks.next = time.Now().Add(n.cfg.PollInterval) // paused with no end: a wake-up or the poll

		default:
			ks.next = n.LocalTime(rep.Next)
		}
	}
	n.indexLeases(ctx, leased, leasedAt)
	if len(emptied) > 0 {
		if err := n.be.Deactivate(ctx, emptied, before); err != nil {
			n.log.Error("rateltd: processor: deactivate", err, "keys", len(emptied))
		}
	}
}

// claim takes the grants other nodes made for this node's waiters of keys, in one round trip.
func (n *Node) claim(ctx context.Context, keys []string) {
	calls := make([]queue.ClaimCall, 0, len(keys))
	var waiting [][]*waiter // waiting[i]: the waiters of calls[i], in the order of its tickets
	n.mu.Lock()
	for _, key := range keys {
		var ws []*waiter
		for _, w := range n.waiters[key] {
			if !w.done {
				ws = append(ws, w)
			}
		}
		if len(ws) == 0 {
			continue
		}
		c := queue.ClaimCall{Key: key, P: n.paramsLocked(key), Tickets: make([]*queue.Ticket, len(ws)), Raws: make([][]byte, len(ws))}
		for i, w := range ws {
			c.Tickets[i], c.Raws[i] = w.t, w.raw
		}
		calls = append(calls, c)
		waiting = append(waiting, ws)
	}
	n.mu.Unlock()
	if len(calls) == 0 {
		return
	}
	for i, res := range n.be.Claim(ctx, calls) {
		key, p := calls[i].Key, calls[i].P
		if res.Err != nil {
			n.log.Error("rateltd: processor: claim", res.Err, "key", key)
			n.mu.Lock()
			n.claimAgain[key] = struct{}{}
			n.mu.Unlock()
			continue
		}
		for j, w := range waiting[i] {
			switch res.Status[j] {
			case queue.Claimed:
				if !n.deliver(key, w.t.ID, delivery{kind: deliverGrant, grantedAt: res.At[j], local: true}) {
					n.giveBackLocal(ctx, key, p, w.t.ID, res.At[j], w.raw, w.t.CostOf()) // claimed grants wait among the local ones
				}
			case queue.WasEvicted:
				n.deliver(key, w.t.ID, delivery{kind: deliverEvicted})
			}
		}
	}
}

// FlushCounts writes key's counts gathered since the last flush now, so that a Status read
// next includes this node's own.
func (n *Node) FlushCounts(ctx context.Context, key string) error {
	return n.flush(ctx, []string{key})
}

// flushCounts writes the outcome counts gathered since the last flush, of every key.
func (n *Node) flushCounts(ctx context.Context) error {
	n.mu.Lock()
	keys := make([]string, 0, len(n.counts)+len(n.unsent))
	for k := range n.counts {
		keys = append(keys, k)
	}
	for k := range n.unsent {
		if n.counts[k] == nil {
			keys = append(keys, k)
		}
	}
	n.mu.Unlock()
	return n.flush(ctx, keys)
}

// maxCountCalls bounds the keys whose counts one round trip writes.
const maxCountCalls = 1024

// flush writes the counts of keys, maxCountCalls keys a round trip: first a key's batch whose
// sending failed before, sent again as it was (the backend adds a batch once, so a batch that
// was added although its reply was lost is not added twice), then what was counted since, as a
// new batch. A batch that fails stays for the next flush; counts gathered meanwhile wait beside
// it, so a key has at most one unsent batch whatever the outage's length. Flushes do not
// overlap (flushMu).
func (n *Node) flush(ctx context.Context, keys []string) error {
	n.flushMu.Lock()
	defer n.flushMu.Unlock()
	var first error
	for range 2 { // an unsent batch, then the counts since
		calls := n.countCalls(keys)
		if len(calls) == 0 {
			break
		}
		written := make([]string, 0, len(calls)) // the keys whose counts since are sent next
		for chunk := range slices.Chunk(calls, maxCountCalls) {
			errs := n.be.AddCounters(ctx, chunk)
			n.mu.Lock()
			for i, err := range errs {
				if err != nil {
					n.log.Error("rateltd: processor: write counters; kept to send again", err, "key", chunk[i].Key)
					first = cmp.Or(first, err)
					continue
				}
				delete(n.unsent, chunk[i].Key)
				written = append(written, chunk[i].Key)
			}
			n.mu.Unlock()
		}
		keys = written
	}
	return first
}

// countCalls returns the batch to send of each of keys that has one: its unsent batch, or a new
// batch of what was counted (kept as unsent until written).
func (n *Node) countCalls(keys []string) []queue.CountCall {
	n.mu.Lock()
	defer n.mu.Unlock()
	calls := make([]queue.CountCall, 0, len(keys))
	for _, key := range keys {
		b, ok := n.unsent[key]
		if !ok {
			c := n.counts[key]
			if c == nil {
				continue
			}
			delete(n.counts, key)
			n.countSeq++
			b = queue.CountBatch{Node: n.id, Seq: n.countSeq, Deltas: c}
			n.unsent[key] = b
		}
		calls = append(calls, queue.CountCall{Key: key, P: n.paramsLocked(key), Batch: b})
	}
	return calls
}
