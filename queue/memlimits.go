package queue

import "context"

// The in-process backend's steps of costs, upstream budgets and concurrency caps: the twins of
// settle.lua, holdback.lua and slots.lua.

// Settle is settle.lua's twin.
func (m *Memory) Settle(_ context.Context, key string, p Params, id []byte, grantedAt, charged, actual int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, true)
	s := newStep(p, now)
	k.rates(p).settle(now, string(id), grantedAt, charged, actual)
	k.count(s, CountSettled, 1)
	if actual < charged {
		k.count(s, CountUnitsReturned, charged-actual)
	}
	if actual > charged {
		k.count(s, CountUnitsOver, actual-charged)
	}
	return nil
}

// HoldBack is holdback.lua's twin.
func (m *Memory) HoldBack(_ context.Context, key string, p Params, rate int, remaining, reset int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, true)
	r := k.rates(p)
	if rate >= r.n {
		return 0, nil
	}
	r.freeNow(now, true)
	d := min(r.free[rate]-remaining, int64(p.Limit.Rate(rate).Max))
	if d <= 0 {
		return 0, nil
	}
	r.holdBack(rate, now, d, reset)
	k.count(newStep(p, now), CountHeldBack, d)
	return d, nil
}

// RenewSlots is slots.lua's twin (renew).
func (m *Memory) RenewSlots(_ context.Context, key string, p Params, ids [][]byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, true)
	n := 0
	for _, id := range ids {
		if _, ok := k.run[string(id)]; ok && p.Limit.Concurrency > 0 {
			k.run[string(id)] = now + p.slotLease().Microseconds()
			n++
		}
	}
	return n, nil
}

// ReleaseSlots is slots.lua's twin (release).
func (m *Memory) ReleaseSlots(_ context.Context, key string, p Params, ids [][]byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, true)
	r := k.rates(p)
	for _, id := range ids {
		r.release(string(id))
	}
	return k.lineLen(), nil
}
