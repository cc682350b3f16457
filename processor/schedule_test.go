package processor

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestSchedule: the due keys come out by their time, zero first, each once; a key set again
// or dropped is where it was put; earliest is the first time left. Checked against a plain
// scan of the keys over random operations.
func TestSchedule(t *testing.T) {
	s := newSchedule()
	want := map[string]time.Time{} // key -> next, for the keys in the heap
	base := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	at := func() time.Time {
		if rng.IntN(8) == 0 {
			return time.Time{}
		}
		return base.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
	}
	for i := range 20000 {
		k := string(rune('a' + rng.IntN(40)))
		switch op := rng.IntN(10); {
		case op < 5:
			t := at()
			s.set(s.ensure(k), t)
			want[k] = t
		case op < 6:
			s.drop(k)
			delete(want, k)
		case op < 7:
			if ks := s.get(k); ks == nil {
				s.ensure(k)
				want[k] = time.Time{}
			}
		default:
			now := base.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
			got := s.due(now, i%97 == 0)
			var exp []string
			for k, next := range want {
				if i%97 == 0 || !next.After(now) {
					exp = append(exp, k)
				}
			}
			slices.Sort(exp)
			sorted := slices.Sorted(slices.Values(got))
			if !slices.Equal(sorted, exp) {
				t.Fatalf("op %d: due by %v: %v, want %v", i, now.Sub(base), sorted, exp)
			}
			for j := 1; j < len(got); j++ {
				if s.get(got[j]).next.Before(s.get(got[j-1]).next) {
					t.Fatalf("op %d: due keys out of order: %v", i, got)
				}
			}
			for _, k := range got { // each due key is set again, as the loop's grant does
				t := at()
				s.set(s.get(k), t)
				want[k] = t
			}
		}
		if len(s.byKey) != len(want) || len(s.heap) != len(want) {
			t.Fatalf("op %d: %d keys, %d in the heap, want %d", i, len(s.byKey), len(s.heap), len(want))
		}
		first, ok := s.earliest()
		if ok != (len(want) > 0) {
			t.Fatalf("op %d: earliest reported %v with %d keys", i, ok, len(want))
		}
		for _, next := range want {
			if next.Before(first) {
				t.Fatalf("op %d: earliest %v, but a key is due at %v", i, first.Sub(base), next.Sub(base))
			}
		}
	}
}
