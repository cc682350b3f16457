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
	at int64
	id string
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
		used = int64(len(w.log) - w.stale(l, now))
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

// Used is how many grants count against the window now.
func (w *Window) Used(l config.Limit, now int64) int {
	free := w.Free(l, now, false)
	switch l.Algorithm {
	case config.SlidingWindow:
		return len(w.log) - w.stale(l, now)
	case config.FixedWindow:
		return l.Max - free
	}
	return l.Burst - free
}

// Record records grants at now, one per id (ids are the sliding-log members).
func (w *Window) Record(l config.Limit, now int64, ids ...string) {
	w.Expire(now)
	win := l.Window.Microseconds()
	switch l.Algorithm {
	case config.SlidingWindow:
		for _, id := range ids {
			w.log = append(w.log, entry{at: now, id: id})
		}
		w.expires = now + win
	case config.FixedWindow:
		start := now - now%win
		if w.start == start {
			w.n += int64(len(ids))
		} else {
			w.start, w.n = start, int64(len(ids))
		}
		w.expires = start + win
	default:
		w.tat = max(w.tat, now) + emit(l)*int64(len(ids))
		w.expires = w.tat
	}
}

// Refund gives back one grant made at grantedAt for id.
func (w *Window) Refund(l config.Limit, now int64, id string, grantedAt int64) {
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
			w.n--
		}
	default:
		if w.tat > now {
			w.tat = max(now, w.tat-emit(l))
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
