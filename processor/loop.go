package processor

import (
	"context"
	"time"

	"github.com/rateltd/rateltd/queue"
)

// maxPipeline bounds how many keys one backend round trip grants.
const maxPipeline = 128

// loop is the node's processor goroutine. It sleeps until the next slot of any key frees (its
// alarm, a wakeTimer: on time to ~0.1 ms), a wake-up arrives or the poll interval passes, then
// grants every due key in batches.
func (n *Node) loop(events <-chan queue.Event, stopListen func(), ready chan<- struct{}) {
	defer close(n.done)
	defer stopListen()
	keys := newSchedule()
	alarm := newWakeTimer()
	defer alarm.stop()
	alarm.set(time.Now())
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
		case <-alarm.C:
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
			if swept := n.poll(ctx, keys, nextPoll); ready != nil && swept != nil {
				<-swept // the first pass, a whole poll, is done before New returns
			}
		} else if n.advertising() {
			n.advertiseHandlers(ctx)
		}
		n.step(ctx, keys)
		cancel()

		wakeAt := nextPoll
		if at, ok := keys.earliest(); ok && at.Before(wakeAt) {
			wakeAt = at
		}
		alarm.set(wakeAt)
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

// step announces the lines opened since the last step, grants every due key and claims for
// every key that asked.
func (n *Node) step(ctx context.Context, keys *schedule) {
	n.mu.Lock()
	opened := n.opened
	n.opened = nil
	all := n.all
	n.all = false
	for k, at := range n.dueAt {
		if ks := keys.get(k); ks == nil {
			keys.set(keys.ensure(k), at)
		} else if !ks.next.IsZero() && at.Before(ks.next) {
			keys.set(ks, at)
		}
	}
	clear(n.dueAt)
	for k, at := range n.joined {
		switch ks := keys.get(k); {
		case ks == nil:
			keys.ensure(k)
		case !ks.next.IsZero() && at.Before(ks.next):
			keys.set(ks, time.Time{})
		}
	}
	clear(n.joined)
	for k := range n.pending {
		keys.set(keys.ensure(k), time.Time{})
	}
	clear(n.pending)
	claims := make([]string, 0, len(n.claims))
	for k := range n.claims {
		claims = append(claims, k)
	}
	clear(n.claims)
	n.mu.Unlock()
	n.announceOpened(ctx, opened)

	due := keys.due(time.Now(), all)
	for len(due) > 0 {
		chunk := due[:min(len(due), maxPipeline)]
		due = due[len(chunk):]
		n.grant(ctx, keys, chunk)
	}
	for len(claims) > 0 {
		chunk := claims[:min(len(claims), maxPipeline)]
		claims = claims[len(chunk):]
		n.claim(ctx, keys, chunk)
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

// grant runs the grant step for keys in one round trip and delivers what it granted.
func (n *Node) grant(ctx context.Context, keys *schedule, chunk []string) {
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
		ks := keys.get(k)
		if errs[i] != nil {
			n.log.Error("rateltd: processor: grant", errs[i], "key", k)
			keys.set(ks, time.Now().Add(n.cfg.PollInterval))
			// The step may have run and its reply been lost: the grants it made for this
			// node's tickets wait among the key's local grants, to be claimed.
			n.mu.Lock()
			n.claims[k] = struct{}{}
			n.mu.Unlock()
			continue
		}
		rep := reps[i]
		ks.stepped, ks.held = rep.Now, false
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
			keys.drop(k)
			emptied, before = append(emptied, k), append(before, rep.Now)
		case rep.Next == queue.PausedForever:
			// Paused with no end: a wake-up or the poll, whichever comes first.
			ks.held = true
			keys.set(ks, time.Now().Add(2*n.cfg.PollInterval))
		default:
			keys.set(ks, n.LocalTime(rep.Next))
		}
	}
	n.indexLeases(ctx, leased, leasedAt)
	if len(emptied) > 0 {
		if err := n.be.Deactivate(ctx, emptied, before); err != nil {
			n.log.Error("rateltd: processor: deactivate", err, "keys", len(emptied))
		}
	}
}

// claim takes the grants other nodes made for this node's waiters of keys, in one round trip;
// a key it claimed from is due again in sched.
func (n *Node) claim(ctx context.Context, sched *schedule, keys []string) {
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
				// The key's time may have been this grant's claim deadline: the loop's next
				// pass looks at the key again.
				sched.set(sched.ensure(key), time.Time{})
				if !n.deliver(key, w.t.ID, delivery{kind: deliverGrant, grantedAt: res.At[j], local: true}) {
					n.giveBackLocal(ctx, key, p, w.t.ID, res.At[j], w.raw, w.t.CostOf()) // claimed grants wait among the local ones
				}
			case queue.WasEvicted:
				n.deliver(key, w.t.ID, delivery{kind: deliverEvicted})
			}
		}
	}
}
