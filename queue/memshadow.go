package queue

// shadow is shadow.lua's shadow_grant: it grants t at once on a key of a shadow limit, with m
// read by freeNow at s.now, counting what the limit would have done, and records the grant.
// Returns how long until the tightest rate's window is entirely free again, µs.
func (k *memKey) shadow(s step, m *memRates, t *Ticket) int64 {
	c := t.CostOf()
	if m.fits(c) {
		k.count(s, CountShadowAllowed, 1)
	} else {
		wait := m.slot(s.now, 1, 0, c) - s.now
		if s.l.MaxQueue == -1 || s.now+wait > t.Deadline {
			k.count(s, CountShadowRefused, 1)
		} else {
			k.count(s, CountShadowQueued, 1)
			k.count(s, CountShadowWait, wait)
			if wait > k.stats[CountShadowWaitMax] {
				k.stats[CountShadowWaitMax] = wait
			}
		}
	}
	m.take(c)
	return m.record(s.now, []string{string(t.ID)}, []int64{c})
}
