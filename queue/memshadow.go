package queue

// shadow is shadow.lua's shadow_grant: it grants t at once on a key of a shadow limit, with m
// read by freeNow at s.now, counting what the limit would have done, and records the grant.
// Returns how long until the tightest rate's window is entirely free again, µs, what the limit
// would have done and the would-be wait, µs.
func (k *memKey) shadow(s step, m *memRates, t *Ticket) (reset int64, v ShadowVerdict, wait int64) {
	c := t.CostOf()
	v = ShadowAllowed
	if m.fits(c) {
		k.count(s, CountShadowAllowed, 1)
	} else {
		wait = m.slot(s.now, 1, 0, c) - s.now
		if s.l.MaxQueue == -1 || s.now+wait > t.Deadline {
			v = ShadowRefused
			k.count(s, CountShadowRefused, 1)
		} else {
			v = ShadowQueued
			k.count(s, CountShadowQueued, 1)
			k.count(s, CountShadowWait, wait)
			if wait > k.stats[CountShadowWaitMax] {
				k.stats[CountShadowWaitMax] = wait
			}
		}
	}
	m.take(c)
	return m.record(s.now, []string{string(t.ID)}, []int64{c}), v, wait
}
