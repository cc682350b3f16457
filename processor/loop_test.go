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

// TestManyKeysFewRoundTrips: a node waiting on many keys claims for them at its poll in a
// round trip per maxPipeline keys, not one per key; and the keys whose lines a grant step
// empties leave the index in a round trip per step, not one per key.
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
	pause := func(until int64) {
		t.Helper()
		if err := be.SetRuntimePause(ctx, "*", until); err != nil {
			t.Fatal(err)
		}
		if err := n.RefreshRuntime(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pause(queue.PausedForever)
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.Acquire(ctx, Request{Key: fmt.Sprintf("k%d", i), Priority: config.PriorityNormal}); err != nil {
				errs <- err
			}
		}()
	}
	waitUntil(t, "every request waits", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.waiters) == keys
	})
	// A poll that begins after now claims for every key.
	c0, k0, _, _ := be.counts()
	waitUntil(t, "a poll claims for every key", func() bool {
		_, k, _, _ := be.counts()
		return k-k0 >= 2*keys
	})
	c1, k1, _, _ := be.counts()
	if calls, claimed := c1-c0, k1-k0; calls*maxPipeline/4 > claimed {
		t.Errorf("claims for %d keys took %d calls; want about one per %d keys", claimed, calls, maxPipeline)
	}

	_, _, d0, _ := be.counts()
	pause(queue.NotPaused)
	for i := range keys {
		n.Recheck(fmt.Sprintf("k%d", i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitUntil(t, "every emptied key leaves the index", func() bool {
		active, err := be.ActiveKeys(ctx)
		return err == nil && len(active) == 0
	})
	_, _, d1, removed := be.counts()
	if removed < keys {
		t.Fatalf("%d keys left the index, want %d", removed, keys)
	}
	if calls := d1 - d0; calls*maxPipeline/4 > removed {
		t.Errorf("%d keys left the index in %d calls; want about one per %d keys", removed, calls, maxPipeline)
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
