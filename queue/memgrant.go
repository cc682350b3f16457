package queue

// The in-process backend's grant step, grant.lua's twin: the same phases, each a method named
// as its Lua function (refund_stale is refundStale, and so on), taking the same steps in the
// same order.

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/rateltd/rateltd/config"
)

// Bounds on one grant step's work (grant.lua's MAX_DROPS, MAX_SKIPS, MAX_REFUNDS, MAX_RECLAIMS).
const (
	maxDrops    = 1000 // tickets dropped unserved
	maxSkips    = 1000 // jobs passed over because no live node runs their handler
	maxRefunds  = 1000 // remote grants looked at for a refund
	maxReclaims = 100  // lapsed leases taken back
)

// grantRun is one grant step on one key: its inputs, its reply so far, and the running state
// grant.lua keeps in the script's locals of the same names.
type grantRun struct {
	k     *memKey
	s     step
	g     *grantStep
	claim int64 // g.ClaimTimeout, µs
	rep   GrantReply
	// m holds what each rate allows still; free is how many grants of cost 1 that is; slots,
	// how many workers of this node are free for jobs. ids are the ids granted and costs their
	// costs; blocked, the cost of the ticket that did not fit (0: none); ownerSeen, the owners
	// in rep.Remote.
	m           *memRates
	free, slots int
	ids         []string
	costs       []int64
	blocked     int64
	ownerSeen   map[string]bool
	// drops counts the tickets dropped unserved, skips the jobs passed over. held: a job's turn
	// keeps tickets behind it waiting; halt: lower priorities wait too (busy is rep.Busy).
	drops, skips int
	held, halt   bool
	// open: the key's limit is a shadow limit and no pause is in force: every ticket fits.
	open bool
}

// grant is grant.lua.
func (k *memKey) grant(s step, g *grantStep) GrantReply {
	r := &grantRun{k: k, s: s, g: g, claim: g.ClaimTimeout.Microseconds(), rep: GrantReply{Now: s.now},
		slots: g.slots, ownerSeen: map[string]bool{}, m: k.rates(s.p)}
	r.refundStale()
	r.joinScheduled()
	r.reclaimLeases()
	until, paused := k.paused(s)
	r.rep.Paused = paused
	if !paused {
		r.free = r.m.freeNow(s.now, true)
	} else {
		r.m.none()
	}
	if r.open = s.l.Shadow && !paused; r.open {
		r.free = g.Batch
	}
	r.pickGrants()
	r.chargeWindow()
	r.rep.Next = r.nextVisit(until)
	return r.rep
}

// scored is a member of a sorted set and its score.
type scored struct {
	member string
	score  int64
}

// lowest is ZRANGEBYSCORE z -inf upTo LIMIT 0 n over a map (member -> score): the members
// scored up to upTo, in a sorted set's order (score, then member bytes), the first n.
func lowest(z map[string]int64, upTo int64, n int) []scored {
	var out []scored
	for m, sc := range z {
		if sc <= upTo {
			out = append(out, scored{m, sc})
		}
	}
	slices.SortFunc(out, func(a, b scored) int {
		return cmp.Or(cmp.Compare(a.score, b.score), strings.Compare(a.member, b.member))
	})
	return out[:min(len(out), n)]
}

// refundStale is grant.lua's refund_stale: it forgets this node's own grants older than twice
// the claim timeout, and gives back the remote grants not claimed in time or whose owner is
// dead (or that are unreadable): of the earliest maxRefunds grants, those past the claim
// timeout unless a node is dead.
func (r *grantRun) refundStale() {
	k, now := r.k, r.s.now
	for raw, at := range k.local {
		if at <= now-2*r.claim {
			delete(k.local, raw)
		}
	}
	upTo := now - r.claim
	if r.g.dead != nil {
		upTo = math.MaxInt64
	}
	for _, e := range lowest(k.granted, upTo, maxRefunds) {
		t := lineTicket([]byte(e.member))
		if e.score <= now-r.claim || t == nil || r.g.dead[string(t.Owner)] {
			delete(k.granted, e.member)
			if t != nil {
				k.rates(r.s.p).refund(now, string(t.ID), e.score, t.CostOf())
			}
			k.count(r.s, CountRefunded, 1)
		}
	}
}

// reclaimLeases is grant.lua's reclaim_leases: it takes back to the head of their line the
// durable jobs whose lease lapsed (their node fell silent while running them) or whose retry
// is due: the maxReclaims due earliest.
func (r *grantRun) reclaimLeases() {
	k, s := r.k, r.s
	for _, e := range lowest(k.lease, s.now, maxReclaims) {
		id := e.member
		delete(k.lease, id)
		j := k.jobs[id]
		switch {
		case j == nil:
		case j.State == jobCancelling:
			if k.endJob(s, []byte(id), j, ResultCancelled, nil) {
				r.rep.Woken = append(r.rep.Woken, []byte(id))
			}
		case j.State == jobRunning:
			j.Lost++
			k.count(s, CountReclaimed, 1)
			if j.Lost > r.g.MaxLost {
				if k.deadJob(s, []byte(id), j, fmt.Sprintf("rateltd: lease lost %d times", j.Lost)) {
					r.rep.Woken = append(r.rep.Woken, []byte(id))
				}
			} else {
				k.requeueJob(s, []byte(id), j, false)
			}
		default:
			k.requeueJob(s, []byte(id), j, false)
		}
	}
}

// drop is grant.lua's drop: it takes the ticket at position i of line q out unserved, counted
// as reason; a corrupt one goes to the dead-letter list.
func (r *grantRun) drop(q, i int, raw []byte, reason string) {
	r.k.take(q, i, false)
	if reason == CountCorrupt {
		r.k.deadLetter(r.s, raw)
	} else {
		r.k.count(r.s, reason, 1)
	}
	r.drops++
}

// grantJob is grant.lua's grant_job: it grants the job of ticket e, at position i of line q,
// to this node under a lease.
func (r *grantRun) grantJob(q, i int, e memTicket) {
	k := r.k
	id := e.t.ID
	j := k.jobs[string(id)]
	if j == nil {
		r.drop(q, i, e.raw, CountCorrupt) // a job ticket without its record
		return
	}
	k.take(q, i, true)
	j.Runs, j.State, j.Holder = j.Runs+1, jobRunning, []byte(r.g.node)
	lease := r.s.now + r.g.Lease.Microseconds()
	k.lease[string(id)] = lease
	k.keepJobs(lease)
	cp := *j
	r.rep.Jobs = append(r.rep.Jobs, GrantedJob{ID: id, Job: &cp})
	r.slots--
	r.takeGrant(string(id), e.t.CostOf())
}

// takeGrant is grant.lua's take_grant: it counts a grant of cost c to id.
func (r *grantRun) takeGrant(id string, c int64) {
	r.m.take(c)
	r.free = r.m.least()
	if r.open {
		r.free = r.g.Batch
	}
	r.ids = append(r.ids, id)
	r.costs = append(r.costs, c)
}

// fits is grant.lua's fits: whether ticket t's cost fits what every rate allows still; when
// it does not, its cost is noted as blocked.
func (r *grantRun) fits(t *Ticket) bool {
	if r.open || r.m.fits(t.CostOf()) {
		return true
	}
	r.blocked = t.CostOf()
	return false
}

// grantRequest is grant.lua's grant_request: it grants request ticket e, at position i of
// line q, to its owner: at once when the owner is this node, else in the granted set for the
// owner to claim.
func (r *grantRun) grantRequest(q, i int, e memTicket) {
	r.k.take(q, i, true)
	r.takeGrant(string(e.t.ID), e.t.CostOf())
	owner := string(e.t.Owner)
	if owner == r.g.node {
		r.rep.Local = append(r.rep.Local, e.raw)
		r.k.local[string(e.raw)] = r.s.now
		return
	}
	r.k.granted[string(e.raw)] = r.s.now
	if !r.ownerSeen[owner] {
		r.ownerSeen[owner] = true
		r.rep.Remote = append(r.rep.Remote, e.t.Owner)
	}
}

// visitJob is grant.lua's visit_job: it deals with job ticket e at position i of line q, and
// returns the position of the next ticket, with ok false when the walk of this line stops.
func (r *grantRun) visitJob(q, i int, e memTicket) (next int, ok bool) {
	h := e.t.Handler
	if !r.g.mine[h] {
		r.held = true
		if r.g.others[h] || r.skips >= maxSkips {
			r.halt = true // its turn has come and another node will take it: the line waits
			return i, false
		}
		r.skips++ // no live node runs its handler: it keeps its place, the others go by
		return i + 1, true
	}
	if !r.fits(e.t) || len(r.ids) >= r.g.Batch {
		return i, false
	}
	if r.slots <= 0 {
		r.held, r.halt, r.rep.Busy = true, true, true
		return i, false
	}
	r.grantJob(q, i, e)
	return i, true
}

// visitRequest is grant.lua's visit_request: it deals with request ticket e at position i of
// line q, and returns as visitJob does.
func (r *grantRun) visitRequest(q, i int, e memTicket) (next int, ok bool) {
	switch {
	case r.g.dead[string(e.t.Owner)]:
		r.drop(q, i, e.raw, CountAbandoned)
	case !r.fits(e.t) || len(r.ids) >= r.g.Batch:
		return i, false
	case r.k.grantedAlready(e.raw):
		r.drop(q, i, e.raw, CountDuplicate) // a second copy: one request, one grant
	default:
		r.grantRequest(q, i, e)
	}
	return i, true
}

// visitTicket is grant.lua's visit_ticket: it deals with the entry at position i of line q,
// dropping it when corrupt or expired, or evicting it when its cost is above what the limit
// can ever admit, else leaving it to visitJob or visitRequest; it returns as they do.
func (r *grantRun) visitTicket(q, i int) (next int, ok bool) {
	e := r.k.lines[q][i]
	switch {
	case e.t == nil:
		r.drop(q, i, e.raw, CountCorrupt)
	case e.t.Deadline <= r.s.now:
		r.drop(q, i, e.raw, CountExpired)
		if e.t.Handler != "" {
			if j := r.k.jobs[string(e.t.ID)]; j != nil && r.k.endJob(r.s, e.t.ID, j, ResultExpired, nil) {
				r.rep.Woken = append(r.rep.Woken, e.t.ID)
			}
		}
	case !r.m.couldFit(e.t.CostOf()):
		// Its cost is above what the limit, lowered since it was queued, can ever admit.
		r.drop(q, i, e.raw, CountEvicted)
		if e.t.Handler != "" {
			if j := r.k.jobs[string(e.t.ID)]; j != nil && r.k.endJob(r.s, e.t.ID, j, ResultEvicted, nil) {
				r.rep.Woken = append(r.rep.Woken, e.t.ID)
			}
		} else {
			r.k.markEvicted(r.s, e.t)
		}
	case e.t.Handler != "":
		return r.visitJob(q, i, e)
	default:
		return r.visitRequest(q, i, e)
	}
	return i, true
}

// pickGrants is grant.lua's pick_grants: it walks the lines, highest priority first, each from
// its head, visiting tickets until the batch and the window are spent (a line stops at the
// first ticket it could grant but may not), a job halts the walk, or maxDrops tickets were
// dropped. (The script reads a line in chunks; a slice needs none.)
func (r *grantRun) pickGrants() {
	for q := config.NumPriorities - 1; q >= 0 && !r.halt; q-- {
		for i, ok := 0, true; ok && r.drops < maxDrops && i < len(r.k.lines[q]); {
			i, ok = r.visitTicket(q, i)
		}
	}
}

// chargeWindow is grant.lua's charge_window: it records the grants in the window and keeps
// the grant sets for their claims.
func (r *grantRun) chargeWindow() {
	if len(r.ids) == 0 {
		return
	}
	k, s := r.k, r.s
	r.m.record(s.now, r.ids, r.costs)
	k.count(s, CountGranted, int64(len(r.ids)))
	if len(r.rep.Remote) > 0 {
		k.grantExp = s.now + 2*r.claim
	}
	if len(r.rep.Local) > 0 {
		k.localExp = s.now + 2*r.claim
	}
}

// nextVisit is grant.lua's next_visit: when to run the step on this key again, given the pause
// in force: 0 when nothing waits, else when a ticket may be granted (PausedForever: at no known
// time), and no later than the first unclaimed grant or lease lapses or scheduled job is due.
func (r *grantRun) nextVisit(pause int64) int64 {
	k, s := r.k, r.s
	next := int64(0)
	if k.lineLen() > 0 {
		switch {
		case pause != NotPaused:
			next = pause
		case r.drops >= maxDrops:
			next = s.now
		case r.blocked > 0:
			next = r.m.next(s.now, r.blocked)
		case r.free > 0 && r.held:
			next = s.now + r.g.Hold.Microseconds()
		case r.free > 0:
			next = s.now
		default:
			next = r.m.next(s.now, 1)
		}
	}
	for _, at := range k.granted {
		if due := at + r.claim; next <= 0 || due < next {
			next = due
		}
	}
	for _, z := range []map[string]int64{k.lease, k.sched} {
		for _, due := range z {
			if next <= 0 || due < next {
				next = due
			}
		}
	}
	return next
}

// grantedAlready reports whether a ticket of these bytes holds a grant already (a second copy
// of it, which grant.lua drops).
func (k *memKey) grantedAlready(raw []byte) bool {
	_, local := k.local[string(raw)]
	_, remote := k.granted[string(raw)]
	return local || remote
}

// take removes the ticket at position i of line q, granted or not (grant.lua's take).
func (k *memKey) take(q, i int, granted bool) {
	e := k.lines[q][i]
	if i == 0 {
		k.pop(q)
	} else {
		k.lines[q] = append(k.lines[q][:i], k.lines[q][i+1:]...)
	}
	k.lineLeft(q, e, granted)
}
