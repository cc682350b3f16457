package processor

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
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

// indexReadings is a backend that records every reading of the index of active keys: its
// since, the backend's time it returned and the keys it found.
type indexReadings struct {
	queue.Backend
	mu    sync.Mutex
	since []int64
	now   []int64
	found []map[string]bool
}

func (r *indexReadings) ActiveKeysSince(ctx context.Context, since int64) ([]string, []int64, int64, error) {
	keys, at, now, err := r.Backend.ActiveKeysSince(ctx, since)
	r.mu.Lock()
	defer r.mu.Unlock()
	found := map[string]bool{}
	for _, k := range keys {
		found[k] = true
	}
	r.since, r.now, r.found = append(r.since, since), append(r.now, now), append(r.found, found)
	return keys, at, now, err
}

func (r *indexReadings) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.since)
}

// finder returns the since of the first reading that found key, and whether one did.
func (r *indexReadings) finder(key string) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, f := range r.found {
		if f[key] {
			return r.since[i], true
		}
	}
	return 0, false
}

// TestIndexReadSinceTheLastReading: the poll reads every entry of the index at the first poll,
// at every fullIndexEvery-th and at a poll that may have lost a wake-up; the others read the
// keys activated since the last reading's time less the lag an activation may land late by.
func TestIndexReadSinceTheLastReading(t *testing.T) {
	m := newMissing(queue.NewMemory())
	be := &indexReadings{Backend: m}
	o := testOptions()
	o.PollInterval = 20 * time.Millisecond
	n, err := New(context.Background(), be, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	waitUntil(t, "two rounds of full readings", func() bool { return be.count() > 2*fullIndexEvery })
	lag := indexLag(o.PollInterval).Microseconds()
	be.mu.Lock()
	for i, since := range be.since[:2*fullIndexEvery+1] {
		want := int64(0)
		if i%fullIndexEvery != 0 {
			want = be.now[i-1] - lag
		}
		if since != want {
			be.mu.Unlock()
			t.Fatalf("reading %d read since %d, want %d", i, since, want)
		}
	}
	lost := len(be.since)
	be.mu.Unlock()
	m.lose.Store(true)
	waitUntil(t, "the readings of two polls after the loss", func() bool { return be.count() >= lost+2 })
	be.mu.Lock()
	defer be.mu.Unlock()
	full := 0
	for i := lost; i < lost+2; i++ {
		if be.since[i] == 0 && i%fullIndexEvery != 0 {
			full++
		}
	}
	if full != 1 {
		t.Fatalf("%d full readings in the two polls after a lost wake-up, want 1: %v", full, be.since[lost:lost+2])
	}
}

// backdated is a backend whose activations carry a time d µs earlier than they were made with:
// activations that land late (the node's loop held up, or its round trip slow).
type backdated struct {
	queue.Backend
	d int64
}

func (b backdated) Activate(ctx context.Context, acts []queue.Activation) error {
	acts = slices.Clone(acts)
	for i := range acts {
		acts[i].At -= b.d
	}
	return b.Backend.Activate(ctx, acts)
}

// TestLateActivations: a line opened behind a node's back (its wake-up lost) whose activation
// landed later than its time by less than the lag is found by the next reading of the keys
// activated since the last; one that landed later still, by the next full reading. Either
// way its job runs.
func TestLateActivations(t *testing.T) {
	mem := queue.NewMemory()
	ctx := context.Background()
	o := testOptions()
	o.PollInterval = 20 * time.Millisecond
	be := &indexReadings{Backend: deaf{Backend: mem, lost: string(queue.EventQueued)}}
	_, started := runnerOf(t, be, o)
	lag := indexLag(o.PollInterval).Microseconds()
	for _, c := range []struct {
		key  string
		late int64
		full bool
	}{{"within", lag / 2, false}, {"beyond", 2 * lag, true}} {
		producer, err := New(ctx, backdated{Backend: mem, d: c.late}, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := producer.Enqueue(ctx, Job{Key: c.key, Handler: "h", Payload: []byte(c.key)}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-started:
			if got != c.key {
				t.Fatalf("ran %q, want %q", got, c.key)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: a job whose line opened while its wake-up was lost, its activation %d µs late, did not start within 10s", c.key, c.late)
		}
		if since, ok := be.finder(c.key); !ok || (since == 0) != c.full {
			t.Fatalf("%s: found by a reading since %d (found: %v), want a full reading: %v", c.key, since, ok, c.full)
		}
		_ = producer.Close(ctx)
	}
}

// rewound is a backend whose clock runs back µs behind the one it wraps once back is set: the
// times it reads the index at, and those it records activations with (a failover to a server
// whose clock is behind).
type rewound struct {
	queue.Backend
	back *atomic.Int64
}

func (r rewound) Activate(ctx context.Context, acts []queue.Activation) error {
	return backdated{Backend: r.Backend, d: r.back.Load()}.Activate(ctx, acts)
}

func (r rewound) ActiveKeysSince(ctx context.Context, since int64) ([]string, []int64, int64, error) {
	keys, at, now, err := r.Backend.ActiveKeysSince(ctx, since)
	return keys, at, now - r.back.Load(), err
}

// TestIndexClockGoneBack: when the backend's clock goes back (a failover to a server whose
// clock is behind), the entries activated since carry times before the reading's since; the
// reading after, since its own time less the lag, finds them: a poll later, not at the next full
// reading.
func TestIndexClockGoneBack(t *testing.T) {
	mem := queue.NewMemory()
	ctx := context.Background()
	o := testOptions()
	o.PollInterval = 20 * time.Millisecond
	minute := time.Minute.Microseconds()
	runnerBack, producerBack := &atomic.Int64{}, &atomic.Int64{}
	producerBack.Store(minute)
	be := &indexReadings{Backend: rewound{Backend: deaf{Backend: mem, lost: string(queue.EventQueued)}, back: runnerBack}}
	_, started := runnerOf(t, be, o)
	// Just after a periodic full reading, a line opens with a time a minute back: the runner's
	// partial readings do not find it.
	waitUntil(t, "a periodic full reading", func() bool { return be.count() > fullIndexEvery })
	producer, err := New(ctx, rewound{Backend: mem, back: producerBack}, o)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close(ctx)
	if _, err := producer.Enqueue(ctx, Job{Key: "k", Handler: "h", Payload: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the line's activation", func() bool {
		keys, err := mem.ActiveKeys(ctx)
		return err == nil && slices.Contains(keys, "k")
	})
	// Then the runner's clock goes back by the minute too.
	runnerBack.Store(minute)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("a job whose line opened after the clock went back did not start within 10s")
	}
	if since, ok := be.finder("k"); !ok || since == 0 {
		t.Fatalf("found by a reading since %d (found: %v); want a partial one after the clock went back", since, ok)
	}
}
