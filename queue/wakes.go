package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/lua"
)

// The wake-ups that may make a key due earlier than its nodes scheduled it (EventRecheck,
// EventRuntime) are numbered: broadcast.lua counts them under the prefix and publishes each
// with its number in the same step. A listener that hears a number skipped, or that has not
// heard by now a number the count had reached at the previous look, may have lost one
// (Backend.Missed); a node then looks at every key again. The others (a line opened, a job's
// end, a grant to claim) go unnumbered: the poll finds what they announce in any case.

// numbered reports whether events of kind go numbered.
func numbered(kind byte) bool { return kind == EventRecheck || kind == EventRuntime }

// wakesTTL is how long the count of numbered wake-ups lives after the last one. When it lapses
// (or Redis loses it) the count starts again, which a listener takes for a loss: one extra
// look at every key.
const wakesTTL = 24 * time.Hour

// heard is what one listener heard of the numbered wake-ups.
type heard struct {
	mu    sync.Mutex
	known bool  // last is known: a number was heard, or Missed has looked
	last  int64 // the number of the last one heard, or taken as heard
	lost  bool  // a number was skipped since Missed last looked
}

// hear notes the number n of a wake-up just heard.
func (h *heard) hear(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.known && n != h.last+1 {
		h.lost = true
	}
	h.known, h.last = true, n
}

// check reports whether a wake-up may have been lost: a number skipped since the last check,
// or one up to before (the count at the previous check) not heard yet; those are then taken as
// heard, each loss reported once. A listener that has heard none and not been checked yet
// starts from count (the count just read).
func (h *heard) check(before, count int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.known {
		h.known, h.last = true, count
		return false
	}
	lost := h.lost || h.last < before
	h.lost = false
	h.last = max(h.last, before)
	return lost
}

// wakeWatch is the Redis backend's listeners and the count as Missed last read it (once
// looked).
type wakeWatch struct {
	mu        sync.Mutex
	listeners map[*heard]struct{} // guarded by mu, as are the two below
	looked    bool
	before    int64
}

func (w *wakeWatch) add(h *heard) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.listeners == nil {
		w.listeners = map[*heard]struct{}{}
	}
	w.listeners[h] = struct{}{}
}

func (w *wakeWatch) remove(h *heard) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.listeners, h)
}

// Missed reads the count of numbered wake-ups and reports whether a listener of this backend
// skipped a number since the last call, or has not yet heard one the count had reached by then
// (each has had a poll interval to arrive). The first call reports true: nothing was watched
// before it.
func (r *Redis) Missed(ctx context.Context) (bool, error) {
	count, err := r.rdb.Get(ctx, r.ks.wakes()).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return true, fmt.Errorf("queue: count of wake-ups: %w", err)
	}
	w := &r.wakes
	w.mu.Lock()
	defer w.mu.Unlock()
	before := w.before
	if count < before {
		before = 0 // the count started again: every listener hears a skip in any case
	}
	lost := !w.looked
	for h := range w.listeners {
		if h.check(before, count) {
			lost = true
		}
	}
	w.looked, w.before = true, count
	return lost, nil
}

// broadcastNumbered sends ev, numbered, to every node.
func (r *Redis) broadcastNumbered(ctx context.Context, ev Event) error {
	c := r.eval(ctx, lua.Broadcast, []any{r.ks.wakes()}, r.ks.events(), encodeEvent(ev), wakesTTL.Milliseconds())
	if err := c.Err(); err != nil {
		return fmt.Errorf("queue: broadcast: %w", err)
	}
	return nil
}

// decodeMessage reads an event as published: numbered ("#n " and the event) or not; n is 0
// when it is not numbered.
func decodeMessage(s string) (ev Event, n int64, ok bool) {
	if rest, found := strings.CutPrefix(s, "#"); found {
		num, e, found := strings.Cut(rest, " ")
		if !found {
			return Event{}, 0, false
		}
		if n, _ = strconv.ParseInt(num, 10, 64); n <= 0 {
			return Event{}, 0, false
		}
		s = e
	}
	ev, ok = decodeEvent(s)
	return ev, n, ok
}
