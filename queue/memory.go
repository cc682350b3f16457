package queue

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rateltd/rateltd/config"
)

// Memory is the in-process Backend: the same lines, windows and steps as Redis, kept in this
// process's memory. Every Client given the same Memory shares its keys, as processes share one
// Redis. State lapses like Redis keys with TTLs, so idle keys leave nothing behind.
// The zero value is not usable; call NewMemory. Safe for concurrent use.
type Memory struct {
	epoch time.Time // wall time at creation; the clock is epoch plus monotonic time since
	base  int64     // epoch in µs

	mu        sync.Mutex
	keys      map[string]*memKey
	index     map[string]int64 // key -> last activation µs
	indexExp  int64            // the index lapses as a whole at this time (0: empty)
	runtime   Runtime
	listeners map[string]map[*memListener]struct{} // by node id (hex)
	// dropped is set when a listener had no room for a wake-up that may make a key due
	// earlier (see numbered); Missed reports and clears it.
	dropped   bool
	beats     map[string]int64 // node id -> heartbeat lasts until µs
	handlers  map[string]int64 // job handler -> some node runs it until µs
	lastSweep int64
}

var _ Backend = (*Memory)(nil)

// NewMemory returns an empty in-process backend.
func NewMemory() *Memory {
	now := time.Now()
	return &Memory{
		epoch:     now,
		base:      now.UnixMicro(),
		keys:      map[string]*memKey{},
		index:     map[string]int64{},
		runtime:   Runtime{Limits: map[string]config.Limit{}, Pauses: map[string]int64{}},
		listeners: map[string]map[*memListener]struct{}{},
		beats:     map[string]int64{},
		handlers:  map[string]int64{},
	}
}

// now is the backend's clock in µs: wall time at creation, advanced by the monotonic clock, so
// that it never goes backwards.
func (m *Memory) now() int64 { return m.base + time.Since(m.epoch).Microseconds() }

// sweepEvery is how often, at most, a call checks every key for lapsed state.
const sweepEvery = int64(time.Second / time.Microsecond)

// key returns key's state with lapsed parts cleared, creating it when create is set; nil when
// it holds nothing and create is not set. Call with mu held.
func (m *Memory) key(key string, now int64, create bool) *memKey {
	if now-m.lastSweep >= sweepEvery {
		m.lastSweep = now
		for name, k := range m.keys {
			if k.expire(now) {
				delete(m.keys, name)
			}
		}
		if m.indexExp != 0 && m.indexExp <= now {
			clear(m.index)
			m.indexExp = 0
		}
	}
	k := m.keys[key]
	if k != nil && k.expire(now) && !create {
		delete(m.keys, key)
		return nil
	}
	if k == nil && create {
		k = &memKey{granted: map[string]int64{}, local: map[string]int64{}, evicted: map[string]int64{}, run: map[string]int64{}, stats: map[string]int64{},
			jobs: map[string]*Job{}, lease: map[string]int64{}, sched: map[string]int64{}, waited: map[string]bool{}, results: map[string]memResult{}}
		m.keys[key] = k
	}
	return k
}

// Len is how many keys hold state (windows, lines, pauses, counters or index entries), after
// lapsed state is cleared. An idle store has Len 0.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastSweep = 0
	m.key("", m.now(), false)
	return len(m.keys) + len(m.index)
}

func (m *Memory) Admit(_ context.Context, p Params, t *Ticket, raw []byte) (AdmitReply, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(t.Key, now, true)
	defer m.drop(t.Key, k, now)
	return k.admit(newStep(p, now), t, raw), nil
}

// drop forgets k when it holds nothing. Call with mu held.
func (m *Memory) drop(name string, k *memKey, now int64) {
	if k.expire(now) {
		delete(m.keys, name)
	}
}

func (m *Memory) Grant(_ context.Context, keys []string, ps []Params, g GrantArgs) ([]GrantReply, []error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gs := newGrantStep(g)
	reps := make([]GrantReply, len(keys))
	for i, name := range keys {
		now := m.now()
		k := m.key(name, now, true)
		gs.slots = 0
		if i < len(g.Slots) {
			gs.slots = g.Slots[i]
		}
		reps[i] = k.grant(newStep(ps[i], now), gs)
		m.drop(name, k, now)
	}
	return reps, make([]error, len(keys))
}

func (m *Memory) Claim(_ context.Context, calls []ClaimCall) []ClaimResult {
	out := make([]ClaimResult, len(calls))
	for i, c := range calls {
		out[i].Status, out[i].At = m.claim(c.Key, c.Tickets, c.Raws)
	}
	return out
}

func (m *Memory) Claimable(_ context.Context, keys []string) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := make([]bool, len(keys))
	for i, key := range keys {
		if k := m.key(key, now, false); k != nil {
			out[i] = len(k.granted) > 0 || len(k.evicted) > 0
		}
	}
	return out, nil
}

func (m *Memory) claim(key string, tickets []*Ticket, raws [][]byte) ([]ClaimStatus, []int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := make([]ClaimStatus, len(tickets))
	at := make([]int64, len(tickets))
	now := m.now()
	k := m.key(key, now, false)
	if k == nil {
		return st, at
	}
	for i, t := range tickets {
		if g, ok := k.granted[string(raws[i])]; ok {
			delete(k.granted, string(raws[i]))
			st[i], at[i] = Claimed, g
			k.local[string(raws[i])] = g // as claim.lua: claimed grants wait among the local ones
			k.localExp = max(k.localExp, now+keepClaimed.Microseconds())
		} else if g, ok := k.local[string(raws[i])]; ok {
			st[i], at[i] = Claimed, g
		} else if _, ok := k.evicted[string(t.ID)]; ok {
			delete(k.evicted, string(t.ID))
			st[i] = WasEvicted
		}
	}
	m.drop(key, k, now)
	return st, at
}

func (m *Memory) Cancel(_ context.Context, p Params, t *Ticket, raw []byte) (CancelOutcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(t.Key, now, true)
	defer m.drop(t.Key, k, now)
	return k.cancel(newStep(p, now), t, raw), nil
}

// Refund is refund.lua's twin.
func (m *Memory) Refund(_ context.Context, key string, p Params, id []byte, grantedAt int64, local []byte, cost int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, true)
	s := newStep(p, now)
	if local != nil {
		if _, ok := k.local[string(local)]; !ok {
			return nil // given back before
		}
		delete(k.local, string(local))
	}
	k.rates(p).refund(now, string(id), grantedAt, cost)
	k.count(s, CountRefunded, 1)
	return nil
}

func (m *Memory) Check(_ context.Context, key string, p Params, cost int64) (Decision, error) {
	var d Decision
	m.read(key, p, func(k *memKey, s step) { d = k.check(s, cost) })
	return d, nil
}

func (m *Memory) State(_ context.Context, key string, p Params) (KeyState, error) {
	var st KeyState
	m.read(key, p, func(k *memKey, s step) { st = k.state(s) })
	return st, nil
}

// read calls f with key's state (empty when it has none), creating nothing.
func (m *Memory) read(key string, p Params, f func(*memKey, step)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, false)
	if k == nil {
		k = &memKey{}
	}
	f(k, newStep(p, now))
}

func (m *Memory) Reset(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if k := m.key(key, now, false); k != nil {
		k.reset(now)
		m.drop(key, k, now)
	}
	return nil
}

func (m *Memory) PauseKey(_ context.Context, key string, until int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.key(key, m.now(), true).pause = until
	return nil
}

// ExtendPause is pause_until.lua's twin.
func (m *Memory) ExtendPause(_ context.Context, key string, until int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.key(key, m.now(), true)
	if k.pause != PausedForever && k.pause < until {
		k.pause = until
	}
	return nil
}

func (m *Memory) Heartbeat(_ context.Context, node []byte, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	until, ok := m.beats[string(node)]
	m.beats[string(node)] = now + ttl.Microseconds()
	return !ok || until <= now, nil
}

func (m *Memory) Forget(_ context.Context, node []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.beats, string(node))
	return nil
}

func (m *Memory) Alive(_ context.Context, nodes [][]byte) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	alive := make([]bool, len(nodes))
	for i, n := range nodes {
		until, ok := m.beats[string(n)]
		if ok && until <= now {
			delete(m.beats, string(n))
			ok = false
		}
		alive[i] = ok
	}
	return alive, nil
}

func (m *Memory) ResumeKey(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if k := m.key(key, now, false); k != nil {
		k.pause = NotPaused
		m.drop(key, k, now)
	}
	return nil
}

// AddCounters is counters.lua's twin: a batch whose number is not above the last one added for
// its node changes nothing.
func (m *Memory) AddCounters(_ context.Context, calls []CountCall) []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, c := range calls {
		k := m.key(c.Key, now, true)
		field := "seq:" + string(c.Batch.Node)
		if c.Batch.Seq <= k.stats[field] {
			continue
		}
		s := newStep(c.P, now)
		for name, d := range c.Batch.Deltas {
			k.count(s, name, d)
		}
		k.stats[field] = c.Batch.Seq
	}
	return make([]error, len(calls))
}

func (m *Memory) Time(context.Context) (int64, error) { return m.now(), nil }

func (m *Memory) Activate(ctx context.Context, acts []Activation) error {
	m.mu.Lock()
	for _, a := range acts {
		m.key(a.Key, m.now(), false) // sweeps a lapsed index first
		m.index[a.Key] = max(m.index[a.Key], a.At)
		m.indexExp = max(m.indexExp, a.Until+indexGrace)
	}
	m.mu.Unlock()
	for _, a := range acts {
		if a.Wake {
			_ = m.Broadcast(ctx, Event{Kind: EventQueued, Key: a.Key}) // never fails
		}
	}
	return nil
}

func (m *Memory) Deactivate(_ context.Context, keys []string, before []int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, key := range keys {
		if at, ok := m.index[key]; ok && at < before[i] {
			delete(m.index, key)
		}
	}
	if len(m.index) == 0 {
		m.indexExp = 0
	}
	return nil
}

func (m *Memory) ActiveKeys(ctx context.Context) ([]string, error) {
	keys, _, _, err := m.ActiveKeysSince(ctx, 0)
	return keys, err
}

func (m *Memory) ActiveKeysSince(_ context.Context, since int64) ([]string, []int64, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.key("", now, false)
	var keys []string
	var at []int64
	for k, a := range m.index {
		if a > since {
			keys, at = append(keys, k), append(at, a)
		}
	}
	return keys, at, now, nil
}

func (m *Memory) ListKeys(_ context.Context, cursor string, count int) ([]string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastSweep = 0
	m.key("", m.now(), false) // sweeps lapsed state
	keys := make([]string, 0, len(m.keys))
	for k := range m.keys {
		if k > cursor {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if count <= 0 || len(keys) <= count {
		return keys, "", nil
	}
	return keys[:count], keys[count-1], nil
}

func (m *Memory) LoadRuntime(context.Context) (Runtime, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rt := Runtime{Limits: make(map[string]config.Limit, len(m.runtime.Limits)), Pauses: make(map[string]int64, len(m.runtime.Pauses))}
	for k, v := range m.runtime.Limits {
		rt.Limits[k] = v
	}
	for k, v := range m.runtime.Pauses {
		rt.Pauses[k] = v
	}
	rt.Factors = maps.Clone(m.runtime.Factors)
	return rt, nil
}

func (m *Memory) SetRuntimeFactor(ctx context.Context, key string, f float64) error {
	m.mu.Lock()
	if m.runtime.Factors == nil {
		m.runtime.Factors = map[string]float64{}
	}
	if f >= 1 {
		delete(m.runtime.Factors, key)
	} else {
		m.runtime.Factors[key] = f
	}
	m.mu.Unlock()
	return m.Broadcast(ctx, Event{Kind: EventRuntime, Key: key})
}

func (m *Memory) SetRuntimeLimit(ctx context.Context, key string, l *config.Limit) error {
	m.mu.Lock()
	if l == nil {
		delete(m.runtime.Limits, key)
	} else {
		m.runtime.Limits[key] = *l
	}
	m.mu.Unlock()
	return m.Broadcast(ctx, Event{Kind: EventRuntime, Key: key})
}

func (m *Memory) SetRuntimePause(ctx context.Context, name string, until int64) error {
	m.mu.Lock()
	if until == NotPaused {
		delete(m.runtime.Pauses, name)
	} else {
		m.runtime.Pauses[name] = until
	}
	m.mu.Unlock()
	return m.Broadcast(ctx, Event{Kind: EventRuntime, Key: name})
}

// Idle returns 0 at once: the in-process backend starts no goroutine for a call.
func (m *Memory) Idle(context.Context) int { return 0 }
