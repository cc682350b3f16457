package processor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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

// missing reports to the node's poll that a wake-up was lost when told to (lose), as the Redis
// backend does when a number of its wake-ups is missing; it counts the grant steps per key, and
// the polls (each asks Missed once).
type missing struct {
	*grantCounter
	lose  atomic.Bool
	polls atomic.Int64
}

func newMissing(be queue.Backend) *missing {
	return &missing{grantCounter: &grantCounter{Backend: be, steps: map[string]int{}}}
}

func (m *missing) Missed(ctx context.Context) (bool, error) {
	m.polls.Add(1)
	if m.lose.Swap(false) {
		return true, nil
	}
	return m.grantCounter.Missed(ctx)
}

// waitPolls waits until k more polls have begun.
func (m *missing) waitPolls(t *testing.T, k int64) {
	t.Helper()
	from := m.polls.Load()
	waitUntil(t, fmt.Sprintf("%d polls", k), func() bool { return m.polls.Load() >= from+k })
}

// TestPollLeavesFarKeysAlone: a key whose next slot comes after the next poll is not looked at
// by every poll (with 10,000 such keys that was 10,000 grant steps a poll, granting nothing),
// only when a wake-up may have been lost: a slot freed behind the node's back (a refund whose
// wake-up did not come) goes to the waiting request within a few polls of the loss showing.
func TestPollLeavesFarKeysAlone(t *testing.T) {
	be := newMissing(queue.NewMemory())
	o := testOptions()
	o.PollInterval = 20 * time.Millisecond
	o.Default = config.Limit{Max: 1, Window: time.Hour, MaxQueue: 10, QueueTimeout: time.Hour}
	n, err := New(context.Background(), be, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx := context.Background()
	first, err := n.Acquire(ctx, Request{Key: "far", Priority: config.PriorityNormal})
	if err != nil || first.Queued {
		t.Fatalf("first request: %+v, %v; want granted at once", first, err)
	}
	got := acquireAsync(n, Request{Key: "far", Priority: config.PriorityNormal})
	waitWaiting(t, n, "far", 1) // in line for a slot an hour away
	be.waitPolls(t, 2)          // its admit's reply handled
	before := be.count("far")
	be.waitPolls(t, 25)
	if steps := be.count("far") - before; steps > 0 {
		t.Fatalf("%d grant steps on a key due in an hour over 25 polls, want 0", steps)
	}

	// A slot frees without a word to the node; it learns nothing until a loss shows.
	if err := be.Refund(ctx, "far", n.Params("far"), first.ID[:], first.At, nil, 1); err != nil {
		t.Fatal(err)
	}
	be.waitPolls(t, 10)
	select {
	case err := <-got:
		t.Fatalf("granted (%v) with no wake-up and no loss reported", err)
	default:
	}
	be.lose.Store(true)
	wantGranted(t, got, "the freed slot, once a lost wake-up showed")
}

// deaf is a backend whose node hears no event of the kinds in lost: those wake-ups are lost.
type deaf struct {
	queue.Backend
	lost string
}

func (d deaf) Listen(node []byte) (<-chan queue.Event, func()) {
	in, stop := d.Backend.Listen(node)
	out := make(chan queue.Event)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for ev := range in {
			if strings.IndexByte(d.lost, ev.Kind) >= 0 {
				continue
			}
			select {
			case out <- ev:
			case <-done:
				return
			}
		}
	}()
	return out, func() {
		close(done)
		stop()
	}
}

// TestLineOpenedBehindTheNodesBack: a node that has a key scheduled for much later (a job due in
// an hour) takes up a line that another node opened there since its last look at its next poll,
// though the wake-up was lost: the index says when the line opened.
func TestLineOpenedBehindTheNodesBack(t *testing.T) {
	mem := queue.NewMemory()
	ctx := context.Background()
	o := testOptions()
	o.PollInterval = 20 * time.Millisecond
	be := newMissing(deaf{Backend: mem, lost: string(queue.EventQueued)})
	runner, started := runnerOf(t, be, o)
	if _, err := runner.Enqueue(ctx, Job{Key: "k", Handler: "h", Payload: []byte("later"), RunAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the runner's look at the key (due in an hour)", func() bool { return be.count("k") > 0 })
	producer, err := New(ctx, mem, o)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close(ctx)
	if _, err := producer.Enqueue(ctx, Job{Key: "k", Handler: "h", Payload: []byte("now")}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-started:
		if got != "now" {
			t.Fatalf("ran %q, want the job enqueued now", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a job whose line opened while its wake-up was lost did not start within 10s")
	}
}

// runnerOf starts a node on be with o whose handler "h" sends the payload of each job it runs
// on the channel returned; the node is closed when the test ends.
func runnerOf(t *testing.T, be queue.Backend, o Options) (*Node, <-chan string) {
	t.Helper()
	runner, err := New(context.Background(), be, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runner.Close(context.Background()) })
	started := make(chan string, 2)
	if err := runner.Handle("h", func(_ context.Context, p []byte) ([]byte, error) {
		started <- string(p)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	return runner, started
}

// TestJoiningALine: a request that joins a line behind others, on a key this node has a time
// for that the request cannot beat, runs no grant step (each such request ran one, which found
// the window full); one that may start sooner (a higher priority, with room in the window for
// its cost but not for the head's) is granted at once.
func TestJoiningALine(t *testing.T) {
	be := &grantCounter{Backend: queue.NewMemory(), steps: map[string]int{}}
	o := testOptions()
	o.PollInterval = time.Hour // keep the poll's visits out of the count
	o.Default = config.Limit{Max: 10, Window: time.Hour, Units: true, MaxQueue: 10, QueueTimeout: 24 * time.Hour}
	n, err := New(context.Background(), be, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx := context.Background()
	if g, err := n.Acquire(ctx, Request{Key: "k", Priority: config.PriorityNormal, Cost: 5}); err != nil || g.Queued {
		t.Fatalf("first request: %+v, %v; want granted at once", g, err)
	}
	for range 2 { // the first opens the line, the second joins it; neither fits before an hour
		acquireAsync(n, Request{Key: "k", Priority: config.PriorityNormal, Cost: 10})
	}
	waitWaiting(t, n, "k", 2)
	n.Recheck("probe") // a step asked for after the admits runs no earlier than theirs would
	waitUntil(t, "the probe's step", func() bool { return be.count("probe") > 0 })
	before := be.count("k")
	for range 5 {
		acquireAsync(n, Request{Key: "k", Priority: config.PriorityNormal, Cost: 10})
	}
	waitWaiting(t, n, "k", 7)
	n.Recheck("probe")
	waitUntil(t, "the probe's second step", func() bool { return be.count("probe") > 1 })
	if got := be.count("k") - before; got != 0 {
		t.Errorf("5 requests joining a line due in an hour ran %d grant steps, want 0", got)
	}

	wantGranted(t, acquireAsync(n, Request{Key: "k", Priority: config.PriorityCritical, Cost: 5}),
		"a request that fits now, ahead of the line,")
}

// TestRuntimeChangeWithoutWakeup: a node learns of a pause lifted (a change of the runtime
// configuration) at its next poll, though the wake-up was lost: the key it had scheduled for
// the pause's end, an hour away, is granted then.
func TestRuntimeChangeWithoutWakeup(t *testing.T) {
	mem := queue.NewMemory()
	ctx := context.Background()
	o := testOptions()
	o.PollInterval = 20 * time.Millisecond
	o.Default = config.Limit{Max: 100, Window: time.Second, MaxQueue: 10, QueueTimeout: 24 * time.Hour}
	be := newMissing(deaf{Backend: mem, lost: string(queue.EventRuntime)})
	n, err := New(ctx, be, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(ctx)
	if err := mem.SetRuntimePause(ctx, "*", n.ServerTime(time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the pause in force", func() bool { return n.Params("k").ExtPause != queue.NotPaused })
	done := acquireAsync(n, Request{Key: "k", Priority: config.PriorityNormal})
	waitWaiting(t, n, "k", 1)
	be.waitPolls(t, 2) // scheduled for the pause's end
	if err := mem.SetRuntimePause(ctx, "*", queue.NotPaused); err != nil {
		t.Fatal(err)
	}
	wantGranted(t, done, "the request, the pause lifted,")
}

// slowLookup is a backend whose lookups for grants to claim (the poll's) take a second once
// armed, as 10,000 keys' take tens of milliseconds; started tells of each slow one.
type slowLookup struct {
	queue.Backend
	armed   atomic.Bool
	started chan struct{}
}

func (s *slowLookup) Claimable(ctx context.Context, keys []string) ([]bool, error) {
	if s.armed.Load() {
		select {
		case s.started <- struct{}{}:
		default:
		}
		time.Sleep(time.Second)
	}
	return s.Backend.Claimable(ctx, keys)
}

// TestPollDoesNotHoldTheLoop: while a poll's lookup for grants to claim runs, the loop grants
// the keys that come due: a request waiting for a slot 100ms away starts within 500ms, not
// after the lookup's second.
func TestPollDoesNotHoldTheLoop(t *testing.T) {
	be := &slowLookup{Backend: queue.NewMemory(), started: make(chan struct{}, 1)}
	o := testOptions()
	o.PollInterval = 50 * time.Millisecond
	o.Default = config.Limit{Max: 1, Window: 100 * time.Millisecond, MaxQueue: 10, QueueTimeout: time.Minute}
	n, err := New(context.Background(), be, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx := context.Background()
	if g, err := n.Acquire(ctx, Request{Key: "k", Priority: config.PriorityNormal}); err != nil || g.Queued {
		t.Fatalf("first request: %+v, %v; want granted at once", g, err)
	}
	be.armed.Store(true)
	<-be.started // a poll's lookup under way
	start := time.Now()
	if g, err := n.Acquire(ctx, Request{Key: "k", Priority: config.PriorityNormal}); err != nil || !g.Queued {
		t.Fatalf("second request: %+v, %v; want granted from the line", g, err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("a request due in 100ms waited %v while a poll's lookup ran", took)
	}
}

// acquireAsync runs n.Acquire(req) on a goroutine; its error comes on the channel.
func acquireAsync(n *Node, req Request) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := n.Acquire(context.Background(), req)
		done <- err
	}()
	return done
}

// waitWaiting waits until want requests of n wait on key.
func waitWaiting(t *testing.T, n *Node, key string, want int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d requests waiting on %q", want, key), func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.waiters[key]) == want
	})
}

// wantGranted fails unless the request whose error comes on done was granted within 10s.
func wantGranted(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not granted within 10s", what)
	}
}
