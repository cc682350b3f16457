package processor

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// roundTrips counts the Claim and Deactivate calls a node makes, and the keys they carry: on the
// Redis backend each call is one round trip.
type roundTrips struct {
	queue.Backend
	mu                       sync.Mutex
	claims, claimKeys        int
	deactivates, deactivated int
	lookups                  int // Claimable calls
}

func (r *roundTrips) Claimable(ctx context.Context, keys []string) ([]bool, error) {
	r.mu.Lock()
	r.lookups++
	r.mu.Unlock()
	return r.Backend.Claimable(ctx, keys)
}

func (r *roundTrips) Claim(ctx context.Context, calls []queue.ClaimCall) []queue.ClaimResult {
	r.mu.Lock()
	r.claims++
	r.claimKeys += len(calls)
	r.mu.Unlock()
	return r.Backend.Claim(ctx, calls)
}

func (r *roundTrips) Deactivate(ctx context.Context, keys []string, before []int64) error {
	r.mu.Lock()
	r.deactivates++
	r.deactivated += len(keys)
	r.mu.Unlock()
	return r.Backend.Deactivate(ctx, keys, before)
}

// counts returns the calls and keys counted so far.
func (r *roundTrips) counts() (claims, claimKeys, deactivates, deactivated int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.claims, r.claimKeys, r.deactivates, r.deactivated
}

// TestManyKeysFewRoundTrips: a node waiting on many keys claims at its poll only where a claim
// could find something, and there in a round trip per maxPipeline keys, not one per key: grants
// made for its tickets by another node whose wake-ups were lost reach its callers by the next
// poll. The keys whose lines a grant step empties leave the index in a round trip per step, not
// one per key.
func TestManyKeysFewRoundTrips(t *testing.T) {
	const keys = 3 * maxPipeline
	be := &roundTrips{Backend: queue.NewMemory()}
	o := testOptions()
	o.PollInterval = 50 * time.Millisecond
	o.Default = config.Limit{Max: 1000, Window: time.Second, MaxQueue: 10, QueueTimeout: time.Minute}
	n, err := New(context.Background(), be, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx := context.Background()
	// Paused for this node: only the other node below grants.
	if err := be.SetRuntimePause(ctx, "*", queue.PausedForever); err != nil {
		t.Fatal(err)
	}
	if err := n.RefreshRuntime(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	names := make([]string, keys)
	for i := range keys {
		names[i] = fmt.Sprintf("k%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.Acquire(ctx, Request{Key: names[i], Priority: config.PriorityNormal}); err != nil {
				errs <- err
			}
		}()
	}
	waitUntil(t, "every request waits", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.waiters) == keys
	})
	// Polls with nothing to claim claim nothing.
	c0, k0, _, _ := be.counts()
	be.mu.Lock()
	l0 := be.lookups
	be.mu.Unlock()
	waitUntil(t, "two polls look for grants to claim", func() bool {
		be.mu.Lock()
		defer be.mu.Unlock()
		return be.lookups >= l0+2
	})
	if _, k, _, _ := be.counts(); k != k0 {
		t.Fatalf("polls claimed for %d keys where nothing was granted", k-k0)
	}

	// Another node grants every ticket; its wake-ups (EventClaim) are lost.
	other := []byte("another node 16b")
	ps := make([]queue.Params, keys)
	for i := range ps {
		ps[i] = n.Params(names[i])
		ps[i].ExtPause = queue.NotPaused
	}
	_, gerrs := be.Grant(ctx, names, ps, queue.GrantArgs{Node: other, Batch: 10, ClaimTimeout: time.Minute})
	for _, err := range gerrs {
		if err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the grants of another node did not reach their callers within 10s")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c1, k1, _, _ := be.counts()
	if calls, claimed := c1-c0, k1-k0; claimed < keys || calls*maxPipeline/4 > claimed {
		t.Errorf("claims for %d keys took %d calls; want %d keys, about one call per %d keys", claimed, calls, keys, maxPipeline)
	}

	// This node's grant steps find the lines emptied.
	waitUntil(t, "every emptied key leaves the index", func() bool {
		active, err := be.ActiveKeys(ctx)
		return err == nil && len(active) == 0
	})
	_, _, d1, removed := be.counts()
	if removed < keys {
		t.Fatalf("%d keys left the index, want %d", removed, keys)
	}
	if d1*maxPipeline/4 > removed {
		t.Errorf("%d keys left the index in %d calls; want about one per %d keys", removed, d1, maxPipeline)
	}
}

// waitUntil waits for cond, failing the test after 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
	}
}
