package queue

import (
	"bytes"
	"slices"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/ratelimit"
)

// memKey is one key's state in the in-process backend, the counterpart of the key's Redis
// structures (see keys.go); its methods are the scripts of package lua, step for step. Each part
// lapses at its own time, as the Redis key with its TTL would. Guarded by Memory.mu.
type memKey struct {
	// wins are the windows by algorithm and rate (0 the main one), apart as in Redis (see
	// windowSuffix): a key whose algorithm changes starts a fresh window.
	wins     [3][1 + config.MaxAlso]ratelimit.Window
	lines    [config.NumPriorities][]memTicket // by Priority.Line
	linesExp [config.NumPriorities]int64
	fair     [config.NumPriorities]*memFair // nil: the line is served first come first served (memfair.go)
	granted  map[string]int64               // raw ticket -> grant µs
	grantExp int64
	local    map[string]int64 // raw ticket -> grant µs: grants for the granting node's own tickets lately
	localExp int64
	pause    int64 // NotPaused, PausedForever or until µs
	stats    map[string]int64
	statsExp int64
	dlq      [][]byte
	dlqExp   int64
	evicted  map[string]int64 // ticket id -> deadline µs
	evictExp int64
	run      map[string]int64 // id -> µs its slot of the concurrency cap lapses unless renewed
	// jobs, lease, sched and waited are the durable jobs' records, leases (or retry times),
	// the times scheduled jobs join the line and the ids somebody waits for; they lapse
	// together at jobsExp. results lapse one by one.
	jobs      map[string]*Job
	lease     map[string]int64
	sched     map[string]int64
	waited    map[string]bool
	jobsExp   int64
	results   map[string]memResult
	resultExp resultExp
}

// memTicket is a line entry: the raw bytes and, unless they are corrupt, the ticket as
// lineTicket reads it.
type memTicket struct {
	raw []byte
	t   *Ticket
}

// step is one call's inputs: the key's parameters and the time.
type step struct {
	p   Params
	l   config.Limit
	now int64
}

func newStep(p Params, now int64) step { return step{p: p, l: p.Limit, now: now} }

// Limits the scripts share (line.lua; grant.lua's are in memgrant.go).
const (
	dlqKeep       = 1000 // dead letters kept per key
	ttlGraceMicro = 1_000_000
)

// indexGrace is how long the index outlives the deadline of the ticket that activated a key.
const indexGrace = ttlGraceMicro

// expire clears each part whose time has passed and reports whether nothing is left.
func (k *memKey) expire(now int64) bool {
	empty := true
	for a := range k.wins {
		for i := range k.wins[a] {
			k.wins[a][i].Expire(now)
			empty = empty && k.wins[a][i].Empty()
		}
	}
	for q := range k.lines {
		if k.linesExp[q] != 0 && k.linesExp[q] <= now {
			k.lines[q], k.linesExp[q], k.fair[q] = nil, 0, nil
		}
	}
	if k.grantExp != 0 && k.grantExp <= now {
		clear(k.granted)
		k.grantExp = 0
	}
	if k.localExp != 0 && k.localExp <= now {
		clear(k.local)
		k.localExp = 0
	}
	if k.pause > 0 && k.pause <= now {
		k.pause = NotPaused
	}
	if k.statsExp != 0 && k.statsExp <= now {
		clear(k.stats)
		k.statsExp = 0
	}
	if k.dlqExp != 0 && k.dlqExp <= now {
		k.dlq, k.dlqExp = nil, 0
	}
	if k.evictExp != 0 && k.evictExp <= now {
		clear(k.evicted)
		k.evictExp = 0
	}
	if k.jobsExp != 0 && k.jobsExp <= now {
		clear(k.jobs)
		clear(k.lease)
		clear(k.sched)
		clear(k.waited)
		k.jobsExp = 0
	}
	k.expireResults(now)
	for id, exp := range k.run {
		if exp <= now {
			delete(k.run, id)
		}
	}
	return empty && len(k.run) == 0 && k.lineLen() == 0 && len(k.granted) == 0 && len(k.local) == 0 && k.pause == NotPaused &&
		len(k.stats) == 0 && len(k.dlq) == 0 && len(k.evicted) == 0 && len(k.jobs) == 0 && len(k.results) == 0
}

func (k *memKey) lineLen() int {
	n := 0
	for _, l := range k.lines {
		n += len(l)
	}
	return n
}

func (k *memKey) count(s step, name string, n int64) {
	k.stats[name] += n
	k.statsExp = s.now + max(s.p.StatsTTL.Microseconds(), 1_000_000)
}

// push puts e in line q, at its head or tail; the line lives until at least deadline (µs).
func (k *memKey) push(q int, e memTicket, head bool, deadline int64) {
	if head {
		k.lines[q] = append([]memTicket{e}, k.lines[q]...)
	} else {
		k.lines[q] = append(k.lines[q], e)
	}
	k.linesExp[q] = max(k.linesExp[q], deadline+ttlGraceMicro)
}

// toDLQ is line.lua's to_dlq: it keeps raw in the dead-letter list, the last dlqKeep of them.
func (k *memKey) toDLQ(s step, raw []byte) {
	k.dlq = append(k.dlq, raw)
	if len(k.dlq) > dlqKeep {
		k.dlq = append(k.dlq[:0:0], k.dlq[len(k.dlq)-dlqKeep:]...)
	}
	k.dlqExp = s.now + max(s.p.StatsTTL.Microseconds(), 1_000_000)
}

func (k *memKey) deadLetter(s step, raw []byte) {
	k.toDLQ(s, raw)
	k.count(s, CountCorrupt, 1)
}

// unitsScan is line.lua's UNITS_SCAN: how many tickets ahead unitsAhead reads the costs of.
const unitsScan = 256

// unitsAhead is line.lua's units_ahead: the cost of the tickets a ticket of line q waits
// behind, those of the higher priorities and the first pos of its own line, as far as the
// first unitsScan of them tell; each past those counts 1.
func (k *memKey) unitsAhead(q, pos int) int64 {
	var units int64
	left := unitsScan
	for p := q; p < config.NumPriorities; p++ {
		line := k.lines[p]
		if p == q {
			line = line[:pos]
		}
		for i, e := range line {
			switch {
			case i >= left:
				units += int64(len(line) - i)
			case e.t != nil:
				units += e.t.CostOf()
			default:
				units++
			}
			if i >= left {
				break
			}
		}
		left = max(0, left-len(line))
	}
	return units
}

// paused is line.lua's paused: the pause in force on the key, its own or the external one;
// ok false when none, else until (PausedForever or µs).
func (k *memKey) paused(s step) (until int64, ok bool) {
	until = PauseInForce(s.now, k.pause, s.p.ExtPause)
	return until, until != NotPaused
}

// pop takes the head of line q; lines that empty lose their time to live, as Redis deletes them.
func (k *memKey) pop(q int) memTicket {
	e := k.lines[q][0]
	k.lines[q][0] = memTicket{}
	k.lines[q] = k.lines[q][1:]
	if len(k.lines[q]) == 0 {
		k.lines[q], k.linesExp[q] = nil, 0
	}
	return e
}

func (k *memKey) markEvicted(s step, t *Ticket) {
	for id, d := range k.evicted {
		if d <= s.now {
			delete(k.evicted, id)
		}
	}
	k.evicted[string(t.ID)] = max(t.Deadline, s.now+1)
	k.evictExp = max(k.evictExp, t.Deadline+ttlGraceMicro)
}

// admit is admit.lua.
func (k *memKey) admit(s step, t *Ticket, raw []byte) AdmitReply {
	_, paused := k.paused(s)
	len0 := k.lineLen()
	m := k.rates(s.p)
	free := m.freeNow(s.now, true)
	if s.l.Shadow && !paused {
		reset, v, wait := k.shadow(s, m, t)
		return AdmitReply{Outcome: Granted, Now: s.now, Remaining: max(0, m.remaining()), ResetAfter: reset, Which: m.which(),
			Shadow: v, ShadowWait: wait}
	}
	if c := t.CostOf(); !paused && len0 == 0 && m.fits(c) {
		m.take(c)
		reset := m.record(s.now, []string{string(t.ID)}, []int64{c}) // CountAdmitted is the node's to count
		return AdmitReply{Outcome: Granted, Now: s.now, Remaining: m.remaining(), ResetAfter: reset, Which: m.which()}
	}
	return k.queue(s, m, t, raw, free)
}

// queue is admit.lua's line_admit: it queues t or refuses it; m holds what each rate may admit
// now, free how many of cost 1 that is.
func (k *memKey) queue(s step, m *memRates, t *Ticket, raw []byte, free int) AdmitReply {
	len0 := k.lineLen()
	pl := k.fairPlace(t.Priority.Line(), t.Tenant, s.p.Head)
	// Under DropOldest, a full line gives up the oldest request of the lowest priority up to
	// t's (the one at the head of its line); durable jobs are never dropped.
	drop, dropCost := -1, int64(1)
	if len0 >= s.l.MaxQueue && s.l.Overflow == config.DropOldest {
		for q := 0; q <= t.Priority.Line(); q++ {
			if len(k.lines[q]) > 0 && (k.lines[q][0].t == nil || k.lines[q][0].t.Handler == "") {
				drop = q
				if h := k.lines[q][0].t; h != nil {
					dropCost = h.CostOf()
				}
				break
			}
		}
	}
	ahead := pl.pos
	for q := t.Priority.Line() + 1; q < config.NumPriorities; q++ {
		ahead += len(k.lines[q])
	}
	if drop == t.Priority.Line() && pl.pos > 0 {
		ahead--
	}
	units := int64(-1)
	if s.l.HasUnits() {
		units = k.unitsAhead(t.Priority.Line(), pl.pos)
		if drop == t.Priority.Line() && pl.pos > 0 {
			units -= dropCost
		}
	}
	earliest := m.slot(s.now, ahead+1, units, t.CostOf())
	if s.l.Shadow {
		earliest = s.now // the limit holds nothing back (shadow); a pause does
	}
	if until, ok := k.paused(s); ok {
		if until == PausedForever {
			earliest = PausedForever
		} else {
			earliest = max(earliest, until)
		}
	}
	rep := AdmitReply{Now: s.now, Remaining: free, Earliest: earliest, LineBefore: len0, Which: m.which()}
	tenantFull := t.Tenant != "" && s.l.MaxQueuePerTenant > 0 && k.tenantWaiting(t.Tenant) >= s.l.MaxQueuePerTenant
	if s.l.MaxQueue == -1 || tenantFull || (earliest != PausedForever && earliest > t.Deadline) {
		k.count(s, CountRejected, 1)
		rep.Outcome = Full
		if s.l.MaxQueue != -1 && !tenantFull {
			rep.Outcome = WouldExceed
		}
		rep.ResetAfter = m.resetAfter(s.now)
		return rep
	}
	if len0 >= s.l.MaxQueue {
		var ev memTicket
		if drop >= 0 {
			ev = k.pop(drop)
			k.lineLeft(drop, ev, false)
		}
		if ev.raw == nil {
			k.count(s, CountRejected, 1)
			rep.Outcome = Full
			rep.ResetAfter = m.resetAfter(s.now)
			return rep
		}
		if ev.t != nil {
			k.markEvicted(s, ev.t)
			k.count(s, CountEvicted, 1)
			rep.Evicted = ev.raw
		} else {
			k.deadLetter(s, ev.raw)
		}
	}
	k.linePush(t.Priority.Line(), memTicket{raw: raw, t: lineTicket(raw)}, t.Tenant, t.Weight, s.p.Head, pl, t.Deadline)
	k.count(s, CountQueued, 1)
	rep.Outcome = Queued

	return rep
}

// cancel is cancel.lua.
func (k *memKey) cancel(s step, t *Ticket, raw []byte) CancelOutcome {
	q := t.Priority.Line()
	before := len(k.lines[q])
	var gone []memTicket
	k.lines[q] = slices.DeleteFunc(k.lines[q], func(e memTicket) bool {
		if bytes.Equal(e.raw, raw) {
			gone = append(gone, e)
			return true
		}
		return false
	})
	removed := before - len(k.lines[q])
	if len(k.lines[q]) == 0 {
		k.lines[q], k.linesExp[q] = nil, 0
	}
	for _, e := range gone {
		k.lineLeft(q, e, false)
	}
	refunded := 0
	for _, z := range []map[string]int64{k.granted, k.local} {
		if at, ok := z[string(raw)]; ok {
			delete(z, string(raw))
			k.rates(s.p).refund(s.now, string(t.ID), at, t.CostOf())
			refunded++
		}
	}
	if removed+refunded > 0 {
		k.count(s, CountCancelled, 1)
	}
	switch {
	case refunded > 0:
		k.count(s, CountRefunded, int64(refunded))
		return Refunded
	case removed > 0:
		return Removed
	}
	delete(k.evicted, string(t.ID))
	return Absent
}

// check is check.lua, for a request of cost c.
func (k *memKey) check(s step, c int64) Decision {
	until, paused := k.paused(s)
	n := k.lineLen()
	m := k.rates(s.p)
	m.freeNow(s.now, false)
	d := Decision{Allowed: !paused && (s.l.Shadow || (n == 0 && m.fits(c))), Remaining: m.remaining(),
		ResetAfter: micros(m.resetAfter(s.now)), Limit: limitOf(s.l, m.which())}
	if !d.Allowed {
		if until == PausedForever {
			d.RetryAfter = -1
		} else {
			units := int64(-1)
			if s.l.HasUnits() {
				units = k.unitsAhead(0, len(k.lines[0]))
			}
			at := m.slot(s.now, n+1, units, c)
			if paused {
				at = max(at, until)
			}
			d.RetryAfter = micros(at - s.now)
		}
	}
	return d
}

// state is status.lua.
func (k *memKey) state(s step) KeyState {
	m := k.rates(s.p)
	m.freeNow(s.now, false)
	rates := m.used(s.now)
	st := KeyState{Now: s.now, Used: m.running(s.now), Remaining: int(m.cfree), Rates: rates, Running: m.running(s.now),
		PausedUntil: PauseInForce(s.now, k.pause, NotPaused), Unclaimed: len(k.granted), DeadLetters: len(k.dlq), Counters: map[string]int64{},
		Jobs: len(k.jobs), Leased: len(k.lease), Scheduled: len(k.sched), Tenants: k.tenants()}
	if len(rates) > 0 {
		tight := m.tight()
		st.Used, st.Remaining = int(rates[tight].Used), int(rates[tight].Remaining)
	}
	for q, line := range k.lines {
		st.Queued[q] = len(line)
		if len(line) > 0 && line[0].t != nil && (st.OldestEnqueued == 0 || line[0].t.Enqueued < st.OldestEnqueued) {
			st.OldestEnqueued = line[0].t.Enqueued
		}
	}
	for name, v := range k.stats {
		st.Counters[name] = v
	}
	return st
}

// reset is reset.lua.
func (k *memKey) reset(now int64) {
	s := step{now: now}
	for q := range k.lines {
		for _, e := range k.lines[q] {
			switch {
			case e.t != nil && e.t.Handler != "":
				if j := k.jobs[string(e.t.ID)]; j != nil {
					k.endJob(s, e.t.ID, j, ResultEvicted, nil)
				}
			case e.t != nil:
				k.markEvicted(s, e.t)
			}
		}
		k.lines[q], k.linesExp[q], k.fair[q] = nil, 0, nil
	}
	for id := range k.sched {
		if j := k.jobs[id]; j != nil {
			k.endJob(s, []byte(id), j, ResultEvicted, nil)
		}
	}
	clear(k.sched)
	for raw := range k.granted {
		if t := lineTicket([]byte(raw)); t != nil {
			k.markEvicted(s, t)
		}
	}
	k.wins = [3][1 + config.MaxAlso]ratelimit.Window{}
	clear(k.granted)
	clear(k.local)
	clear(k.stats)
	k.grantExp, k.localExp, k.statsExp, k.dlq, k.dlqExp = 0, 0, 0, nil, 0
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }
