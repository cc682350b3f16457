package processor

import (
	"container/heap"
	"time"
)

// keyState is the loop's schedule for one key with a line. Only the loop goroutine touches it.
type keyState struct {
	key string
	// next is when to grant the key again, local time; zero means at once. Set through
	// schedule.set, which keeps the heap in order.
	next time.Time
	// stepped is the server time (µs) of the key's last grant step.
	stepped int64
	// held: the key is paused with no end; every poll looks at it (next is after the poll).
	held bool
	// at is the key's place in the schedule's heap; -1 while it is out (taken as due).
	at int
}

// schedule is the loop's keys with a line, by name and by when each is next due (a heap,
// earliest first; zero first of all): finding the due keys and the next wake-up costs the
// keys due, not every key (10,000 keys scanned twice a pass cost ~0.3 ms a pass).
type schedule struct {
	byKey map[string]*keyState
	heap  keyHeap
}

func newSchedule() *schedule { return &schedule{byKey: map[string]*keyState{}} }

// get returns key's state; nil when the loop has none.
func (s *schedule) get(key string) *keyState { return s.byKey[key] }

// ensure returns key's state, made due at once when new.
func (s *schedule) ensure(key string) *keyState {
	ks := s.byKey[key]
	if ks == nil {
		ks = &keyState{key: key, at: -1}
		s.byKey[key] = ks
		heap.Push(&s.heap, ks)
	}
	return ks
}

// set schedules ks for t (zero: at once), putting it back in the heap if it was taken out.
func (s *schedule) set(ks *keyState, t time.Time) {
	ks.next = t
	if ks.at < 0 {
		heap.Push(&s.heap, ks)
	} else {
		heap.Fix(&s.heap, ks.at)
	}
}

// drop forgets key.
func (s *schedule) drop(key string) {
	ks := s.byKey[key]
	if ks == nil {
		return
	}
	if ks.at >= 0 {
		heap.Remove(&s.heap, ks.at)
	}
	delete(s.byKey, key)
}

// due takes out of the heap and returns the keys due by now (every key when all): each is to
// be set again or dropped.
func (s *schedule) due(now time.Time, all bool) []string {
	var keys []string
	for len(s.heap) > 0 && (all || !s.heap[0].next.After(now)) {
		ks := heap.Pop(&s.heap).(*keyState)
		keys = append(keys, ks.key)
	}
	return keys
}

// earliest returns when the first key is due; false when none is scheduled.
func (s *schedule) earliest() (time.Time, bool) {
	if len(s.heap) == 0 {
		return time.Time{}, false
	}
	return s.heap[0].next, true
}

// keyHeap orders keys by next, the zero time first (container/heap).
type keyHeap []*keyState

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h keyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].at, h[j].at = i, j
}

func (h *keyHeap) Push(x any) {
	ks := x.(*keyState)
	ks.at = len(*h)
	*h = append(*h, ks)
}

func (h *keyHeap) Pop() any {
	old := *h
	ks := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	ks.at = -1
	return ks
}
