package queue

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// heldFlights is a batcher's one and all that hold every flight in the air until the test
// lets one land, and record the calls each flight took.
type heldFlights struct {
	land    chan struct{} // a receive lands one flight
	mu      sync.Mutex
	flights [][]int // each flight's calls, in take-off order
}

func (h *heldFlights) took(calls []int) {
	h.mu.Lock()
	h.flights = append(h.flights, calls)
	h.mu.Unlock()
}

func (h *heldFlights) taken() [][]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]int(nil), h.flights...)
}

func (h *heldFlights) batcher(most, crowd int) *batcher[int, int] {
	return &batcher[int, int]{
		most: most, crowd: crowd,
		one: func(_ context.Context, a int) (int, error) {
			h.took([]int{a})
			<-h.land
			return a, nil
		},
		all: func(_ context.Context, batch []*batchCall[int, int]) {
			calls := make([]int, len(batch))
			for i, c := range batch {
				calls[i] = c.a
			}
			h.took(calls)
			<-h.land
			for _, c := range batch {
				c.rep = c.a
			}
		},
	}
}

// caller returns a function that makes call a of b on a goroutine of its own, and sends a and
// its answer on answers.
func caller(t *testing.T, b *batcher[int, int], answers chan<- [2]int) func(a int) {
	return func(a int) {
		go func() {
			rep, err := b.do(context.Background(), a)
			if err != nil {
				t.Errorf("call %d: %v", a, err)
			}
			answers <- [2]int{a, rep}
		}()
	}
}

// waitFor polls cond (with b.mu held) until it holds, for up to 10 s.
func waitFor[A, R any](t *testing.T, b *batcher[A, R], what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		ok := cond()
		b.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: not %s", what)
		}
	}
}

// TestSecondFlightWaitsForACrowd: with a flight in the air, the calls that come wait for it
// until a crowd waits, and the call that makes the crowd takes off with all of them; a flight
// that lands while another flies and fewer than a crowd wait leaves them to the other flight,
// whose landing sends them. Every call gets its own answer.
func TestSecondFlightWaitsForACrowd(t *testing.T) {
	const crowd = 4
	h := &heldFlights{land: make(chan struct{})}
	b := h.batcher(2, crowd)
	answers := make(chan [2]int, 16)
	call := caller(t, b, answers)
	flightsTaken := func(n int) func() bool { return func() bool { return len(h.taken()) == n } }

	call(0) // alone: flies at once
	waitFor(t, b, "the first call in the air", flightsTaken(1))
	for a := 1; a < crowd; a++ {
		call(a)
	}
	// A call decides whether it leads under mu, as it joins pending: a second flight is
	// counted in flying before the calls it takes leave pending.
	waitFor(t, b, "three calls waiting", func() bool { return len(b.pending) == crowd-1 || b.flying > 1 })
	b.mu.Lock()
	flying := b.flying
	b.mu.Unlock()
	if flying != 1 {
		t.Fatalf("%d flights in the air with %d calls waiting: want one, fewer than a crowd wait", flying, crowd-1)
	}

	call(crowd) // the crowd: a second flight takes the four waiting
	waitFor(t, b, "a second flight in the air", flightsTaken(2))
	if got := h.taken()[1]; len(got) != crowd {
		t.Fatalf("the second flight took %v, want the %d calls waiting", got, crowd)
	}

	call(10)
	waitFor(t, b, "a call waiting", func() bool { return len(b.pending) == 1 })
	call(11)
	waitFor(t, b, "two calls waiting", func() bool { return len(b.pending) == 2 })
	h.land <- struct{}{} // one of the two flights lands; two wait, fewer than a crowd
	// The landing, once counted, either left one flight in the air or handed a call the lead.
	handed := func() bool {
		return slices.ContainsFunc(b.pending, func(c *batchCall[int, int]) bool { return c.handed })
	}
	waitFor(t, b, "the landing counted", func() bool { return b.flying == 1 || handed() || len(h.taken()) > 2 })
	b.mu.Lock()
	flying, lead := b.flying, handed()
	b.mu.Unlock()
	if n := len(h.taken()); flying != 1 || lead || n != 2 {
		t.Fatalf("after a landing with 2 calls waiting: %d flights in the air, a lead handed %v, %d flights taken; "+
			"want the other flight to take them", flying, lead, n)
	}
	h.land <- struct{}{} // the other lands and hands the lead: the two go together
	waitFor(t, b, "a third flight in the air", flightsTaken(3))
	if got := h.taken()[2]; len(got) != 2 || got[0] != 10 || got[1] != 11 {
		t.Fatalf("the third flight took %v, want [10 11]", got)
	}
	h.land <- struct{}{}
	waitFor(t, b, "no flight in the air", func() bool { return b.flying == 0 && len(b.pending) == 0 })
	for range crowd + 3 {
		if got := <-answers; got[0] != got[1] {
			t.Errorf("call %d answered %d", got[0], got[1])
		}
	}
}

// TestNoCrowdFliesAsBefore: a batcher with no crowd (0) puts a second flight in the air for a
// single call, as many flights as it allows.
func TestNoCrowdFliesAsBefore(t *testing.T) {
	h := &heldFlights{land: make(chan struct{})}
	b := h.batcher(2, 0)
	done := make(chan struct{}, 2)
	for a := range 2 {
		go func() {
			b.do(context.Background(), a)
			done <- struct{}{}
		}()
	}
	waitFor(t, b, "two flights in the air", func() bool { return b.flying == 2 && len(h.taken()) == 2 })
	h.land <- struct{}{}
	h.land <- struct{}{}
	<-done
	<-done
}

// TestSoloFlightFliesAlone: a flight of fewer than a crowd that takes off alone goes by solo,
// and while it flies no other flight takes off, whatever waits; once it lands, a crowd's
// flight goes by all and a second flight may join it as before.
func TestSoloFlightFliesAlone(t *testing.T) {
	const crowd = 4
	h := &heldFlights{land: make(chan struct{})}
	b := h.batcher(2, crowd)
	var soloMu sync.Mutex
	var solos [][]int // the flights that went by solo
	all := b.all
	b.solo = func(ctx context.Context, batch []*batchCall[int, int]) {
		calls := make([]int, len(batch))
		for i, c := range batch {
			calls[i] = c.a
		}
		soloMu.Lock()
		solos = append(solos, calls)
		soloMu.Unlock()
		all(ctx, batch)
	}
	soloTaken := func() [][]int {
		soloMu.Lock()
		defer soloMu.Unlock()
		return append([][]int(nil), solos...)
	}
	answers := make(chan [2]int, 32)
	call := caller(t, b, answers)
	flightsTaken := func(n int) func() bool { return func() bool { return len(h.taken()) == n } }
	pending := func(n int) func() bool { return func() bool { return len(b.pending) == n } }

	call(0) // alone: flies at once, by one
	waitFor(t, b, "the first call in the air", flightsTaken(1))
	call(1)
	waitFor(t, b, "a call waiting", pending(1))
	call(2)
	waitFor(t, b, "two calls waiting", pending(2))
	h.land <- struct{}{} // the lead goes to call 1: a flight of two, alone in the air
	waitFor(t, b, "a second flight in the air", flightsTaken(2))
	if got := soloTaken(); len(got) != 1 || !slices.Equal(got[0], []int{1, 2}) {
		t.Fatalf("flights by solo %v, want [[1 2]]", got)
	}
	// A crowd and more wait: no flight joins the solo one (a flight that did would take them
	// from pending, and show in the flights taken below).
	for a := 3; a < 3+crowd+1; a++ {
		call(a)
		waitFor(t, b, "the call waiting or taken", func() bool { return len(b.pending) == a-2 || len(h.taken()) > 2 })
	}
	b.mu.Lock()
	flying := b.flying
	b.mu.Unlock()
	if n := len(h.taken()); flying != 1 || n != 2 {
		t.Fatalf("%d flights in the air, %d taken, with a crowd waiting behind a solo flight: want 1 and 2", flying, n)
	}
	h.land <- struct{}{} // the solo flight lands: the crowd goes by all
	waitFor(t, b, "a third flight in the air", flightsTaken(3))
	if got := h.taken()[2]; len(got) != crowd+1 {
		t.Fatalf("the third flight took %v, want the %d calls waiting", got, crowd+1)
	}
	for a := 10; a < 10+crowd; a++ { // a crowd again: a second flight joins the crowd's
		call(a)
	}
	waitFor(t, b, "a fourth flight in the air", flightsTaken(4))
	if got := soloTaken(); len(got) != 1 {
		t.Fatalf("flights by solo %v, want only the first", got)
	}
	h.land <- struct{}{}
	h.land <- struct{}{}
	waitFor(t, b, "no flight in the air", func() bool { return b.flying == 0 && len(b.pending) == 0 })
	for range 3 + crowd + 1 + crowd {
		if got := <-answers; got[0] != got[1] {
			t.Errorf("call %d answered %d", got[0], got[1])
		}
	}
}

// TestLoneCallFliesAlone: with solo set (the admits' batcher), a call that goes alone flies as
// a solo flight: no flight joins it, whatever waits, and the calls that came meanwhile go
// together once it lands. Without solo, a crowd's flight joins it as before.
func TestLoneCallFliesAlone(t *testing.T) {
	const crowd = 4
	for _, withSolo := range []bool{true, false} {
		h := &heldFlights{land: make(chan struct{})}
		b := h.batcher(2, crowd)
		if withSolo {
			b.solo = b.all
		}
		answers := make(chan [2]int, 16)
		call := caller(t, b, answers)
		call(0) // alone: flies at once, by one
		waitFor(t, b, "the lone call in the air", func() bool { return len(h.taken()) == 1 })
		for a := 1; a <= crowd+1; a++ {
			call(a)
		}
		if withSolo {
			waitFor(t, b, "a crowd waiting", func() bool { return len(b.pending) == crowd+1 || len(h.taken()) > 1 })
			if n := len(h.taken()); n != 1 {
				t.Fatalf("with solo: %d flights taken with a crowd waiting behind a lone call, want 1", n)
			}
			h.land <- struct{}{} // the lone call lands: the crowd goes in one flight
		}
		waitFor(t, b, "a second flight in the air", func() bool { return len(h.taken()) == 2 })
		got := h.taken()[1]
		if withSolo && len(got) != crowd+1 || len(got) < crowd {
			t.Fatalf("solo %v: the second flight took %v, want the calls waiting (%d, or with solo %d)", withSolo, got, crowd, crowd+1)
		}
		stop := make(chan struct{})
		go func() { // lands every flight from now on
			for {
				select {
				case h.land <- struct{}{}:
				case <-stop:
					return
				}
			}
		}()
		for range crowd + 2 {
			if got := <-answers; got[0] != got[1] {
				t.Errorf("call %d answered %d", got[0], got[1])
			}
		}
		close(stop)
	}
}
