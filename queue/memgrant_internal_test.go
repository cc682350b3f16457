package queue

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rateltd/rateltd/config"
)

// grantRunOn is a grant step on key k of a fresh Memory, with nothing run yet.
func grantRunOn(t *testing.T, g GrantArgs) (*grantRun, int64) {
	t.Helper()
	m := NewMemory()
	now := m.now()
	k := m.key("k", now, true)
	p := Params{Limit: config.Limit{Max: 10, Window: time.Minute}.WithDefaults(), StatsTTL: time.Minute}
	return &grantRun{k: k, s: newStep(p, now), g: newGrantStep(g), claim: g.ClaimTimeout.Microseconds(),
		ownerSeen: map[string]bool{}}, now
}

// TestReclaimEarliestLeases: a grant step takes back the maxReclaims lapsed leases due
// earliest, as grant.lua's ZRANGEBYSCORE does (ties in the order of the ids' bytes), and
// leaves the others for the next step.
func TestReclaimEarliestLeases(t *testing.T) {
	r, now := grantRunOn(t, GrantArgs{ClaimTimeout: time.Second, MaxLost: 3})
	const n = 3 * maxReclaims
	owner := uuid.New()
	for i := range n {
		id := fmt.Sprintf("job-%012d", i)
		r.k.jobs[id] = &Job{Key: "k", Handler: "h", Priority: config.PriorityNormal, State: jobRetrying, Wait: 60_000_000,
			Owner: owner[:], ResultTTL: 1000}
		r.k.lease[id] = now - int64(n-(i+1)/2) // all lapsed; ids 2i-1 and 2i due at the same time
	}
	r.reclaimLeases()
	for i := range n {
		id := fmt.Sprintf("job-%012d", i)
		if _, left := r.k.lease[id]; left != (i >= maxReclaims) {
			t.Errorf("lease %d of %d, due at now-%d: left %v; want the %d due earliest taken back", i, n, n-(i+1)/2, left, maxReclaims)
		}
	}
	if got := len(r.k.lines[config.PriorityNormal.Line()]); got != maxReclaims {
		t.Errorf("%d jobs back in line; want %d", got, maxReclaims)
	}
}

// TestRefundEarliestStaleGrants: when a node is dead, a grant step looks at the maxRefunds
// unclaimed grants made earliest, as grant.lua's ZRANGE does, and gives back those of the dead
// node's tickets among them.
func TestRefundEarliestStaleGrants(t *testing.T) {
	dead := uuid.New()
	r, now := grantRunOn(t, GrantArgs{ClaimTimeout: time.Minute, Dead: [][]byte{dead[:]}})
	const n = maxRefunds + maxRefunds/2
	raws := make([]string, n)
	for i := range n {
		id := uuid.New()
		tk := &Ticket{ID: id[:], Key: "k", Priority: config.PriorityNormal, Enqueued: now, Deadline: now + 60_000_000, Owner: dead[:]}
		raw, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		raws[i] = string(raw)
		r.k.granted[raws[i]] = now - int64(n-i) // fresh, but their owner is dead; i earlier than i+1
	}
	r.refundStale()
	for i, raw := range raws {
		if _, left := r.k.granted[raw]; left != (i >= maxRefunds) {
			t.Errorf("grant %d of %d: left %v; want the %d made earliest given back", i, n, left, maxRefunds)
		}
	}
	if got := r.k.stats[CountRefunded]; got != maxRefunds {
		t.Errorf("refunded %d; want %d", got, maxRefunds)
	}
}
