package queue

import (
	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/ratelimit"
)

// memRates is limits.lua's lim_ functions for the in-process backend: every rate of one key's
// limit over the key's windows, and its concurrency cap over the key's slots, within one step.
// free is limits.lua's FREE: what each rate may admit still, as freeNow read it less what take
// took since; cfree is CFREE, the slots free.
type memRates struct {
	k     *memKey
	l     config.Limit
	n     int // l.NumRates()
	free  [1 + config.MaxAlso]int64
	conc  int
	lease int64 // a slot's lease, µs
	cfree int64
}

func (k *memKey) rates(p Params) *memRates {
	return &memRates{k: k, l: p.Limit, n: p.Limit.NumRates(), conc: p.Limit.Concurrency, lease: p.slotLease().Microseconds()}
}

// running is lim_running: how many hold a slot now.
func (m *memRates) running(now int64) int {
	n := 0
	for _, exp := range m.k.run {
		if exp > now {
			n++
		}
	}
	return n
}

// release is lim_release: it frees the slot of id, if it holds one.
func (m *memRates) release(id string) bool {
	_, ok := m.k.run[id]
	delete(m.k.run, id)
	return ok && m.conc > 0
}

// next is lim_next: when to look again at a line held up by a request of cost c.
func (m *memRates) next(now, c int64) int64 {
	at := m.slot(now, 1, 0, c)
	if at <= now && m.conc > 0 && m.cfree < 1 {
		first := int64(0)
		for _, exp := range m.k.run {
			if first == 0 || exp < first {
				first = exp
			}
		}
		if first != 0 {
			return max(now+1, first)
		}
		return now + m.lease
	}
	return at
}

// win is rate i's window and the limit its algorithm steps take.
func (m *memRates) win(i int) (*ratelimit.Window, config.Limit) {
	return &m.k.wins[m.l.Algorithm][i], m.l.Only(i)
}

// freeNow is lim_free: how many requests of cost 1 may start now; free holds what each rate
// may admit. With trim, stale sliding-log entries are removed first.
func (m *memRates) freeNow(now int64, trim bool) int {
	for i := range m.n {
		w, l := m.win(i)
		m.free[i] = int64(w.Free(l, now, trim))
	}
	if m.conc > 0 {
		if trim {
			for id, exp := range m.k.run {
				if exp <= now {
					delete(m.k.run, id)
				}
			}
		}
		m.cfree = max(0, int64(m.conc-m.running(now)))
	}
	return m.least()
}

// fits is lim_fits: whether a grant of cost c fits what every rate may admit still.
func (m *memRates) fits(c int64) bool {
	for i := range m.n {
		if m.l.Rate(i).Charge(c) > m.free[i] {
			return false
		}
	}
	return m.conc == 0 || m.cfree >= 1
}

// couldFit is lim_could_fit: whether some time a grant of cost c could fit.
func (m *memRates) couldFit(c int64) bool {
	for i := range m.n {
		if r := m.l.Rate(i); r.Units && c > r.Capacity(m.l.Algorithm) {
			return false
		}
	}
	return true
}

// take is lim_take: it takes a grant of cost c from free.
func (m *memRates) take(c int64) {
	for i := range m.n {
		m.free[i] -= m.l.Rate(i).Charge(c)
	}
	m.cfree--
}

// least is lim_least: the least any rate, and the concurrency cap, may admit still.
func (m *memRates) least() int {
	least := int64(-1)
	for i := range m.n {
		if least < 0 || m.free[i] < least {
			least = m.free[i]
		}
	}
	if m.conc > 0 && (least < 0 || m.cfree < least) {
		least = m.cfree
	}
	return int(max(0, least))
}

// none is lim_none: a paused key admits nothing.
func (m *memRates) none() {
	clear(m.free[:])
	m.cfree = 0
}

// tight is lim_tight: the rate with the least of its max left, the first of equals.
func (m *memRates) tight() int {
	t := 0
	for i := 1; i < m.n; i++ {
		if m.free[i]*int64(m.l.Rate(t).Max) < m.free[t]*int64(m.l.Rate(i).Max) {
			t = i
		}
	}
	return t
}

// which is lim_which: the rate remaining and resetAfter are of, 1-based; 0 with no rate.
func (m *memRates) which() int {
	if m.n == 0 {
		return 0
	}
	return m.tight() + 1
}

// remaining is lim_remaining: what the tightest rate may admit still; with no rate, the free
// slots.
func (m *memRates) remaining() int {
	if m.n == 0 {
		return int(m.cfree)
	}
	return int(m.free[m.tight()])
}

// resetAfter is lim_reset_after: how long until the tightest rate's window is entirely free
// again, µs (0 with no rate).
func (m *memRates) resetAfter(now int64) int64 {
	if m.n == 0 {
		return 0
	}
	w, l := m.win(m.tight())
	return w.ResetAfter(l, now)
}

// record is lim_record: grants at now, one for each of ids, of costs (nil: each 1), in every
// rate. Returns how long until the tightest rate's window is entirely free again, µs.
func (m *memRates) record(now int64, ids []string, costs []int64) int64 {
	t := m.tight()
	for i := range m.n {
		w, l := m.win(i)
		r := m.l.Rate(i)
		for j, id := range ids {
			c := int64(1)
			if costs != nil {
				c = costs[j]
			}
			w.Charge(l, now, id, r.Charge(c))
		}
	}
	if m.conc > 0 {
		for _, id := range ids {
			m.k.run[id] = now + m.lease
		}
	}
	if m.n == 0 {
		return 0
	}
	w, l := m.win(t)
	return w.ResetAfter(l, now)
}

// holdBack is lim_hold: it takes d from rate i now, to lapse reset µs from now.
func (m *memRates) holdBack(i int, now, d, reset int64) {
	w, l := m.win(i)
	if l.Algorithm != config.SlidingWindow {
		w.Charge(l, now, "upstream", d)
		return
	}
	win := l.Window.Microseconds()
	at := min(now, max(now-win+1, now+reset-win))
	if l.Units {
		w.ChargeAt(l, now, at, "upstream", d)
		return
	}
	for range d {
		w.ChargeAt(l, now, at, "upstream", 1)
	}
}

// refund is lim_refund: it gives back the grant of cost c made at grantedAt for id, and its
// slot.
func (m *memRates) refund(now int64, id string, grantedAt, c int64) {
	for i := range m.n {
		w, l := m.win(i)
		w.Refund(l, now, id, grantedAt, m.l.Rate(i).Charge(c))
	}
	m.release(id)
}

// settle is lim_settle: it changes the grant made at grantedAt for id from cost charged to
// actual in every rate that counts units.
func (m *memRates) settle(now int64, id string, grantedAt, charged, actual int64) {
	for i := range m.n {
		if m.l.Rate(i).Units {
			w, l := m.win(i)
			w.Settle(l, now, id, grantedAt, charged, actual)
		}
	}
}

// slot is lim_slot: the earliest time a request of cost c may start behind k-1 requests of
// units cost in all (units < 0: unknown, each of cost 1), when free may start now and
// everything ahead is served.
func (m *memRates) slot(now int64, k int, units, c int64) int64 {
	at := now
	for i := range m.n {
		need := int64(k)
		if m.l.Rate(i).Units {
			if units < 0 {
				units = int64(k - 1)
			}
			need = units + c
		}
		w, l := m.win(i)
		at = max(at, w.Slot(l, now, int(need), int(m.free[i])))
	}
	return at
}

// used is lim_used: what each rate counts now and may admit still.
func (m *memRates) used(now int64) []RateState {
	out := make([]RateState, m.n)
	for i := range m.n {
		w, l := m.win(i)
		out[i] = RateState{Used: int64(w.Used(l, now)), Remaining: m.free[i]}
	}
	return out
}
