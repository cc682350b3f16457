package processor

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/rateltd/rateltd/queue"
)

// activations is a backend that records the activations it is asked for, and fails them
// while fail is set.
type activations struct {
	queue.Backend
	calls [][]queue.Activation
	fail  bool
}

func (a *activations) Activate(ctx context.Context, acts []queue.Activation) error {
	a.calls = append(a.calls, slices.Clone(acts))
	if a.fail {
		return errors.New("activate refused")
	}
	return a.Backend.Activate(ctx, acts)
}

// TestIndexLeasesOncePerLease: the keys a grant step leased jobs of go into the index in one
// call, each covered for two leases; a key is activated again only once its cover falls short of
// a lease from the step's time, so a busy key costs an activation every lease, not every step. A
// failed activation covers nothing: the next step tries again. A poll forgets covers past.
func TestIndexLeasesOncePerLease(t *testing.T) {
	ctx := context.Background()
	be := &activations{Backend: queue.NewMemory()}
	cfg := testOptions()
	cfg.LeaseTimeout = 10 * time.Second
	lease := cfg.LeaseTimeout.Microseconds()
	n := &Node{be: be, cfg: cfg, log: newLogLimiter(slog.Default()), indexed: map[string]int64{}}
	const t0 = int64(1_000_000_000)

	n.indexLeases(ctx, []string{"a", "b"}, t0)
	want := [][]queue.Activation{{{Key: "a", At: t0, Until: t0 + 2*lease}, {Key: "b", At: t0, Until: t0 + 2*lease}}}
	if !slices.EqualFunc(be.calls, want, slices.Equal) {
		t.Fatalf("first step: activations %+v, want %+v", be.calls, want)
	}

	be.calls = nil
	n.indexLeases(ctx, []string{"a", "b"}, t0+lease) // covered for exactly a lease still
	n.indexLeases(ctx, nil, t0+lease)
	if len(be.calls) != 0 {
		t.Fatalf("keys covered for a lease were activated again: %+v", be.calls)
	}

	t1 := t0 + lease + 1
	n.indexLeases(ctx, []string{"b", "c"}, t1)
	want = [][]queue.Activation{{{Key: "b", At: t1, Until: t1 + 2*lease}, {Key: "c", At: t1, Until: t1 + 2*lease}}}
	if !slices.EqualFunc(be.calls, want, slices.Equal) {
		t.Fatalf("a step past the cover: activations %+v, want %+v", be.calls, want)
	}
	if got, err := be.ActiveKeys(ctx); err != nil || !slices.Equal(sorted(got), []string{"a", "b", "c"}) {
		t.Fatalf("active keys %v, %v; want a, b and c", got, err)
	}

	be.calls, be.fail = nil, true
	t2 := t0 + 2*lease
	n.indexLeases(ctx, []string{"a"}, t2)
	be.fail = false
	n.indexLeases(ctx, []string{"a"}, t2)
	if len(be.calls) != 2 {
		t.Fatalf("after a failed activation the next step did not try again: %+v", be.calls)
	}

	n.forgetIndexed(t1 + 2*lease + 1)
	if _, ok := n.indexed["b"]; ok || len(n.indexed) != 1 || n.indexed["a"] != t2+2*lease {
		t.Fatalf("covers after forgetting those past: %v", n.indexed)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
