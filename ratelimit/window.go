// Package ratelimit is the engine behind package rateltd; it makes no stability promise and
// exports only what the module uses. Its one job is the in-process half of the rate-limit
// algorithms: on Redis they run inside the scripts of package lua (limits.lua), and Window is
// the same algorithms in process, step for step, for the in-process backend. Both answer the
// same questions: how many may start now, record grants, give one back, when the k-th waiting
// request may start, and when the window is free again.
//
// Times are microseconds of the backend's clock.
package ratelimit

import (
	"slices"
	"sort"

	"github.com/rateltd/rateltd/config"
)

// Window is one key's window state: a sliding-window log, a fixed-window counter or a GCRA
// theoretical arrival time, as the limit passed to each call says. The zero value is an empty
// window. Not safe for concurrent use.
type Window struct {
	// log holds the sliding-log entries, oldest first (grant times never go backwards).
	log []entry
	// start and n are the fixed window's start and its count.
	start, n int64
	// tat is GCRA's theoretical arrival time.
	tat int64
	// expires is when the state lapses as a whole, like the Redis key's TTL.
	expires int64
}

type entry struct {
	at   int64
	id   string
	cost int64
}

func emit(l config.Limit) int64 { return ceilDiv(l.Window.Microseconds(), int64(l.Max)) }

func tau(l config.Limit) int64 { return emit(l) * int64(l.Burst) }

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// Expire clears the state when its time has passed; Empty reports whether it holds nothing.
func (w *Window) Expire(now int64) {
	if w.expires != 0 && w.expires <= now {
		*w = Window{}
	}
}

// Empty reports whether the window holds no state.
func (w *Window) Empty() bool { return w.expires == 0 }

// trim drops sliding-log entries at or before now-window by re-slicing from the front: O(1)
// amortized per entry, since append's growth copies only the live entries. A log that has
// shrunk well below its capacity is copied into a smaller one.
func (w *Window) trim(l config.Limit, now int64) {
	i := w.stale(l, now)
	if i == 0 {
		return
	}
	clear(w.log[:i])
	w.log = w.log[i:]
	if cap(w.log) > 2*len(w.log)+64 {
		w.log = append([]entry(nil), w.log...)
	}
}

// stale counts the sliding-log entries at or before now-window (the log is in time order).
func (w *Window) stale(l config.Limit, now int64) int {
	edge := now - l.Window.Microseconds()
	return sort.Search(len(w.log), func(i int) bool { return w.log[i].at > edge })
}

// Free is how many may start now. With trim, stale sliding-log entries are removed first.
func (w *Window) Free(l config.Limit, now int64, trim bool) int {
	w.Expire(now)
	var used int64
	switch l.Algorithm {
	case config.SlidingWindow:
		if trim {
			w.trim(l, now)
		}
		used = w.used(l, w.stale(l, now))
	case config.FixedWindow:
		if w.start == now-now%l.Window.Microseconds() {
			used = w.n
		}
	default:
		tat := max(w.tat, now)
		return int(max(0, min(int64(l.Burst), (now+tau(l)-tat)/emit(l))))
	}
	return int(max(0, int64(l.Max)-used))
}

// used is what the sliding-log entries from position i on count: their number for a rate that
// counts requests, their cost for one that counts units (O(entries): the in-process log keeps
// no running sum).
func (w *Window) used(l config.Limit, i int) int64 {
	if !l.Units {
		return int64(len(w.log) - i)
	}
	return w.sum(i)
}

// sum is the cost of the sliding-log entries from position i on.
func (w *Window) sum(i int) int64 {
	var n int64
	for _, e := range w.log[i:] {
		n += e.cost
	}
	return n
}

// Used is how much counts against the window now (requests, or units when l counts them).
// A settled overage may take it above Max.
func (w *Window) Used(l config.Limit, now int64) int {
	free := w.Free(l, now, false)
	switch l.Algorithm {
	case config.SlidingWindow:
		return int(w.used(l, w.stale(l, now)))
	case config.FixedWindow:
		if w.start == now-now%l.Window.Microseconds() {
			return int(w.n)
		}
		return l.Max - free
	}
	return l.Burst - free
}

// Record records grants at now, one per id (ids are the sliding-log members), each of cost 1.
func (w *Window) Record(l config.Limit, now int64, ids ...string) {
	for _, id := range ids {
		w.Charge(l, now, id, 1)
	}
}

// Charge records one grant of cost c at now for id.
func (w *Window) Charge(l config.Limit, now int64, id string, c int64) {
	w.Expire(now)
	win := l.Window.Microseconds()
	switch l.Algorithm {
	case config.SlidingWindow:
		w.log = append(w.log, entry{at: now, id: id, cost: c})
		w.expires = now + win
	case config.FixedWindow:
		start := now - now%win
		if w.start == start {
			w.n += c
		} else {
			w.start, w.n = start, c
		}
		w.expires = start + win
	default:
		w.tat = max(w.tat, now) + emit(l)*c
		w.expires = w.tat
	}
}

// ChargeAt records in a sliding log an entry of cost c for id at time at (at most now), in its
// place among the older entries.
func (w *Window) ChargeAt(l config.Limit, now, at int64, id string, c int64) {
	w.Expire(now)
	i := sort.Search(len(w.log), func(i int) bool { return w.log[i].at > at })
	w.log = slices.Insert(w.log, i, entry{at: at, id: id, cost: c})
	w.expires = max(w.expires, now+l.Window.Microseconds())
}

// Refund gives back the grant of cost c made at grantedAt for id.
func (w *Window) Refund(l config.Limit, now int64, id string, grantedAt, c int64) {
	w.Expire(now)
	switch l.Algorithm {
	case config.SlidingWindow:
		for i, e := range w.log {
			if e.id == id {
				w.log = append(w.log[:i], w.log[i+1:]...)
				break
			}
		}
	case config.FixedWindow:
		win := l.Window.Microseconds()
		if w.start == grantedAt-grantedAt%win && w.n > 0 {
			w.n = max(0, w.n-c)
		}
	default:
		if w.tat > now {
			w.tat = max(now, w.tat-emit(l)*c)
		}
	}
}

// Settle changes the grant made at grantedAt for id from cost charged to cost actual: less
// gives the difference back as of the grant's time (the sliding-log entry keeps its time,
// with the lower cost); more charges the overage at now.
func (w *Window) Settle(l config.Limit, now int64, id string, grantedAt, charged, actual int64) {
	w.Expire(now)
	if actual > charged {
		w.Charge(l, now, id, actual-charged)
		return
	}
	d := charged - actual
	switch l.Algorithm {
	case config.SlidingWindow:
		for i, e := range w.log {
			if e.id == id && e.at == grantedAt {
				w.log[i].cost = max(0, e.cost-d)
				break
			}
		}
	case config.FixedWindow:
		win := l.Window.Microseconds()
		if w.start == grantedAt-grantedAt%win {
			w.n = max(0, w.n-d)
		}
	default:
		if w.tat > now {
			w.tat = max(now, w.tat-emit(l)*d)
		}
	}
}

// Slot is the earliest time the k-th request from now may start (k >= 1) when free may start
// now and every request ahead is served.
func (w *Window) Slot(l config.Limit, now int64, k, free int) int64 {
	w.Expire(now)
	if k <= free {
		return now
	}
	win := l.Window.Microseconds()
	switch l.Algorithm {
	case config.SlidingWindow:
		stale := w.stale(l, now)
		c := len(w.log) - stale
		if c <= 0 {
			return now + win*int64((k-1)/l.Max)
		}
		if l.Units {
			return w.unitSlot(l, stale, k)
		}
		i := max(0, c-l.Max) + (k - free) - 1
		if i < c {
			return w.log[stale+i].at + win
		}
		return w.log[stale+i%c].at + win*int64(i/c+1)
	case config.FixedWindow:
		return now - now%win + win*int64(1+(k-free-1)/l.Max)
	}
	tat := max(w.tat, now)
	return max(now, tat+emit(l)*int64(k)-tau(l))
}

// unitSlot is Slot for a sliding log that counts units, k units wanted: the time the oldest
// entries have freed enough, walking the live ones (from stale on) oldest first.
func (w *Window) unitSlot(l config.Limit, stale, k int) int64 {
	win := l.Window.Microseconds()
	need := w.sum(stale) + int64(k) - int64(l.Max)
	for _, e := range w.log[stale:] {
		need -= e.cost
		if need <= 0 {
			return e.at + win
		}
	}
	return w.log[len(w.log)-1].at + win + win*int64((k-1)/l.Max)
}

// ResetAfter is how long until the window is entirely free again, µs.
func (w *Window) ResetAfter(l config.Limit, now int64) int64 {
	w.Expire(now)
	switch l.Algorithm {
	case config.SlidingWindow:
		if len(w.log) == 0 {
			return 0
		}
		return max(0, w.log[len(w.log)-1].at+l.Window.Microseconds()-now)
	case config.FixedWindow:
		win := l.Window.Microseconds()
		return now - now%win + win - now
	}
	return max(0, w.tat-now)
}
