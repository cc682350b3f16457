package processor

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// TestLeaseHeldAfterAFreeze: a node that stood still between a job's grant and its start for a
// third of a lease or more starts the handler only on a lease renewed now: not when another
// node took the job meanwhile (TestChaosStopped met it: a process woken from SIGSTOP ran a job
// the others had run), yes when the lease is still its own; a fresh grant needs no renewal.
func TestLeaseHeldAfterAFreeze(t *testing.T) {
	ctx := context.Background()
	be := queue.NewMemory()
	cfg := testOptions()
	cfg.LeaseTimeout = 60 * time.Millisecond
	n := &Node{be: be, cfg: cfg, log: newLogLimiter(slog.Default())}
	p := queue.Params{Limit: config.Limit{Max: 100, Window: time.Second}.WithDefaults(), StatsTTL: time.Minute}
	a, b := uuid.New(), uuid.New()
	grant := func(node uuid.UUID, lease time.Duration) (queue.GrantedJob, int64) {
		t.Helper()
		reps, errs := be.Grant(ctx, []string{"k"}, []queue.Params{p}, queue.GrantArgs{Node: node[:], Batch: 10,
			ClaimTimeout: time.Second, Mine: []string{"h"}, Slots: []int{1}, Lease: lease, Hold: time.Second, MaxLost: 5})
		if errs[0] != nil || len(reps[0].Jobs) != 1 {
			t.Fatalf("grant: %+v, %v", reps[0], errs[0])
		}
		return reps[0].Jobs[0], reps[0].Now
	}
	enqueue := func() {
		t.Helper()
		now, err := be.Time(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id := uuid.New()
		tk := &queue.Ticket{ID: id[:], Key: "k", Priority: config.PriorityNormal, Enqueued: now, Deadline: now + int64(time.Minute/time.Microsecond),
			Owner: a[:], Handler: "h"}
		raw, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		rec, err := (&queue.Job{Key: "k", Handler: "h", Priority: tk.Priority, Wait: tk.Deadline - now, Owner: a[:], ResultTTL: 60_000, Enqueued: now}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := be.Enqueue(ctx, p, tk, raw, rec, 0); err != nil || rep.Outcome != queue.Queued {
			t.Fatalf("enqueue: %+v, %v", rep, err)
		}
	}

	enqueue()
	g, at := grant(a, 30*time.Millisecond)
	if !n.leaseHeld(ctx, "k", p, g, at) {
		t.Fatal("a job granted just now was not started")
	}
	time.Sleep(60 * time.Millisecond) // a's lease lapses while it stands still
	grant(b, time.Minute)
	if n.leaseHeld(ctx, "k", p, g, at) {
		t.Fatal("a node frozen past its lease started a job another node had taken")
	}

	enqueue()
	g, at = grant(a, time.Minute)
	time.Sleep(30 * time.Millisecond) // frozen a while, the lease still its own
	if !n.leaseHeld(ctx, "k", p, g, at) {
		t.Fatal("a node frozen within its lease did not start its job")
	}
}
