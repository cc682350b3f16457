package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/queue"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// eachBackend runs f on a fresh Memory, and on Redis and a Redis Cluster under a prefix of the
// test's own.
func eachBackend(t *testing.T, f func(t *testing.T, be queue.Backend)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		f(t, queue.NewMemory())
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Server(t)
		r := queue.NewRedis(srv.Client(t), srv.Prefix(t), 4)
		if err := r.LoadScripts(context.Background()); err != nil {
			t.Fatal(err)
		}
		f(t, r)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.SharedCluster(t)
		r := queue.NewRedis(cl.Client(t), cl.Prefix(t), 4)
		if err := r.LoadScripts(context.Background()); err != nil {
			t.Fatal(err)
		}
		f(t, r)
	})
}

var (
	nodeA = uuid.New()
	nodeB = uuid.New()
)

func params(l config.Limit) queue.Params {
	return queue.Params{Limit: l.WithDefaults(), StatsTTL: time.Minute}
}

// ticket makes a ticket of owner for key, due in a minute, with its encoding.
func ticket(t *testing.T, be queue.Backend, key string, owner uuid.UUID, prio config.Priority) (*queue.Ticket, []byte) {
	t.Helper()
	now, err := be.Time(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	tk := &queue.Ticket{ID: id[:], Key: key, Priority: prio, Enqueued: now, Deadline: now + int64(time.Minute/time.Microsecond), Owner: owner[:]}
	raw, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return tk, raw
}

func admit(t *testing.T, be queue.Backend, p queue.Params, tk *queue.Ticket, raw []byte, want queue.Outcome) queue.AdmitReply {
	t.Helper()
	rep, err := be.Admit(context.Background(), p, tk, raw)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != want {
		t.Fatalf("admit: outcome %v, want %v (%+v)", rep.Outcome, want, rep)
	}
	return rep
}

func grant(t *testing.T, be queue.Backend, key string, p queue.Params, node uuid.UUID) queue.GrantReply {
	t.Helper()
	return grantWith(t, be, key, p, queue.GrantArgs{Node: node[:], Batch: 100, ClaimTimeout: 5 * time.Second})
}

// grantWith runs one grant step for key with g.
func grantWith(t *testing.T, be queue.Backend, key string, p queue.Params, g queue.GrantArgs) queue.GrantReply {
	t.Helper()
	reps, errs := be.Grant(context.Background(), []string{key}, []queue.Params{p}, g)
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	return reps[0]
}

// A grant made for another node's ticket waits to be claimed: the owner claims it (again, if
// the reply of its first claim was lost), and gives it back once however often it asks.
func TestRemoteGrantClaimed(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 1, Window: time.Minute})
		first, firstRaw := ticket(t, be, "k", nodeA, config.PriorityNormal)
		admit(t, be, p, first, firstRaw, queue.Granted)
		if err := be.PauseKey(ctx, "k", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		tk, raw := ticket(t, be, "k", nodeA, config.PriorityNormal)
		admit(t, be, p, tk, raw, queue.Queued)
		// The first grant goes back, so the window has room once resumed.
		if err := be.Refund(ctx, "k", p, first.ID, 0, nil, 1); err != nil {
			t.Fatal(err)
		}
		if rep := grant(t, be, "k", p, nodeB); !rep.Paused || len(rep.Local)+len(rep.Remote) != 0 {
			t.Fatalf("granted while paused: %+v", rep)
		}
		if err := be.ResumeKey(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		claimable(t, be, "k", false)
		rep := grant(t, be, "k", p, nodeB)
		if len(rep.Local) != 0 || len(rep.Remote) != 1 || string(rep.Remote[0]) != string(nodeA[:]) {
			t.Fatalf("grant by node B: %+v, want one remote grant for node A", rep)
		}
		claimable(t, be, "k", true)
		st, at, err := claimOne(ctx, be, "k", p, []*queue.Ticket{tk}, [][]byte{raw})
		if err != nil || st[0] != queue.Claimed || at[0] != rep.Now {
			t.Fatalf("claim: %v %v %v", st, at, err)
		}
		claimable(t, be, "k", false) // claimed: among the node's own grants now
		// A claim whose reply was lost can be made again: the grant is still the node's.
		st, at2, err := claimOne(ctx, be, "k", p, []*queue.Ticket{tk}, [][]byte{raw})
		if err != nil || st[0] != queue.Claimed || at2[0] != rep.Now {
			t.Fatalf("second claim: %v %v %v; want the same grant", st, at2, err)
		}
		// Given back twice (a refund whose reply was lost, sent again), it counts once.
		for range 2 {
			if err := be.Refund(ctx, "k", p, tk.ID, rep.Now, raw, 1); err != nil {
				t.Fatal(err)
			}
		}
		if s, err := be.State(ctx, "k", p); err != nil || s.Counters[queue.CountRefunded] != 2 {
			t.Fatalf("refunded %d, %v; want 2 (the first grant, and this one once)", s.Counters[queue.CountRefunded], err)
		}
		if st, _, _ = claimOne(ctx, be, "k", p, []*queue.Ticket{tk}, [][]byte{raw}); st[0] != queue.StillWaiting {
			t.Fatalf("claim after the grant was given back: %v", st)
		}
	})
}

// claimable checks what Claimable says of key, and of a key that never had anything.
func claimable(t *testing.T, be queue.Backend, key string, want bool) {
	t.Helper()
	got, err := be.Claimable(context.Background(), []string{"nothing-here", key})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] || got[1] != want {
		t.Fatalf("claimable %v; want [false %v]", got, want)
	}
}

// Cancelling a ticket granted but not yet claimed refunds its slot.
func TestCancelAfterGrantRefunds(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		for _, alg := range []config.Algorithm{config.SlidingWindow, config.FixedWindow, config.TokenBucket} {
			key := "k" + alg.String()
			p := params(config.Limit{Algorithm: alg, Max: 2, Window: time.Hour})
			if err := be.PauseKey(ctx, key, queue.PausedForever); err != nil {
				t.Fatal(err)
			}
			tk, raw := ticket(t, be, key, nodeA, config.PriorityNormal)
			admit(t, be, p, tk, raw, queue.Queued)
			if err := be.ResumeKey(ctx, key); err != nil {
				t.Fatal(err)
			}
			grant(t, be, key, p, nodeB)
			if d, _ := be.Check(ctx, key, p, 1); d.Remaining != 1 {
				t.Fatalf("%v: remaining %d after one grant, want 1", alg, d.Remaining)
			}
			if out, err := be.Cancel(ctx, p, tk, raw); err != nil || out != queue.Refunded {
				t.Fatalf("%v: cancel: %v %v, want Refunded", alg, out, err)
			}
			if d, _ := be.Check(ctx, key, p, 1); d.Remaining != 2 {
				t.Fatalf("%v: remaining %d after the refund, want 2", alg, d.Remaining)
			}
		}
	})
}

// DropOldest evicts the oldest ticket of the lowest priority; its owner learns it on claim
// (the key is Claimable until then). Reject refuses the newcomer.
func TestOverflow(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 1, Window: time.Hour, MaxQueue: 2, Overflow: config.DropOldest})
		if err := be.PauseKey(ctx, "k", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		high, highRaw := ticket(t, be, "k", nodeA, config.PriorityHigh)
		low, lowRaw := ticket(t, be, "k", nodeA, config.PriorityLow)
		admit(t, be, p, high, highRaw, queue.Queued)
		admit(t, be, p, low, lowRaw, queue.Queued)
		claimable(t, be, "k", false)
		// A low newcomer may evict the low one, but never the high one.
		nl, nlRaw := ticket(t, be, "k", nodeB, config.PriorityLow)
		rep := admit(t, be, p, nl, nlRaw, queue.Queued)
		if string(rep.Evicted) != string(lowRaw) {
			t.Fatalf("evicted %q, want the low ticket", rep.Evicted)
		}
		claimable(t, be, "k", true) // until its owner claims the eviction
		st, _, err := claimOne(ctx, be, "k", p, []*queue.Ticket{low, high}, [][]byte{lowRaw, highRaw})
		if err != nil || st[0] != queue.WasEvicted || st[1] != queue.StillWaiting {
			t.Fatalf("claim: %v %v", st, err)
		}
		claimable(t, be, "k", false)
		// Now high and the new low wait; a second low newcomer evicts the first low newcomer.
		n2, n2Raw := ticket(t, be, "k", nodeB, config.PriorityLow)
		if rep := admit(t, be, p, n2, n2Raw, queue.Queued); string(rep.Evicted) != string(nlRaw) {
			t.Fatalf("evicted %q, want the first low newcomer", rep.Evicted)
		}
		p.Limit.Overflow = config.Reject
		r, rRaw := ticket(t, be, "k", nodeB, config.PriorityCritical)
		admit(t, be, p, r, rRaw, queue.Full)
		s, err := be.State(ctx, "k", p)
		if err != nil {
			t.Fatal(err)
		}
		if s.Queued != [4]int{1, 0, 1, 0} || s.Counters[queue.CountEvicted] != 2 || s.Counters[queue.CountRejected] != 1 {
			t.Fatalf("state %+v", s)
		}
	})
}

// The token bucket allows Burst at once, then one per emission interval; the fixed window
// resets at its aligned boundary.
func TestTokenBucketAndFixedWindow(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		tb := params(config.Limit{Algorithm: config.TokenBucket, Max: 10, Window: time.Hour, Burst: 3})
		for i := range 4 {
			tk, raw := ticket(t, be, "tb", nodeA, config.PriorityNormal)
			want := queue.Granted
			if i == 3 {
				want = queue.WouldExceed // the next token comes in 6 minutes, the deadline in 1
			}
			admit(t, be, tb, tk, raw, want)
		}
		d, err := be.Check(ctx, "tb", tb, 1)
		if err != nil || d.Allowed || d.RetryAfter < 5*time.Minute || d.RetryAfter > 6*time.Minute {
			t.Fatalf("token bucket check: %+v %v; want a retry in about 6 minutes", d, err)
		}
		fw := params(config.Limit{Algorithm: config.FixedWindow, Max: 2, Window: time.Hour})
		for range 2 {
			tk, raw := ticket(t, be, "fw", nodeA, config.PriorityNormal)
			admit(t, be, fw, tk, raw, queue.Granted)
		}
		d, err = be.Check(ctx, "fw", fw, 1)
		if err != nil || d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 || d.RetryAfter > time.Hour || d.RetryAfter != d.ResetAfter {
			t.Fatalf("fixed window check: %+v %v", d, err)
		}
	})
}

// TestDeadOwner: told that a node is dead, a grant step drops its waiting tickets (counted as
// abandoned) and refunds its unclaimed grants at once, and serves the others.
func TestDeadOwner(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 1, Window: time.Minute})
		if err := be.PauseKey(ctx, "k", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		granted, grantedRaw := ticket(t, be, "k", nodeA, config.PriorityNormal)
		admit(t, be, p, granted, grantedRaw, queue.Queued)
		if err := be.ResumeKey(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if rep := grant(t, be, "k", p, nodeB); len(rep.Remote) != 1 {
			t.Fatalf("first grant: %+v", rep)
		}
		// Node A dies with its grant unclaimed and two more tickets waiting, before one of B's
		// (queued while paused, so that none is refused for its deadline).
		if err := be.PauseKey(ctx, "k", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			tk, raw := ticket(t, be, "k", nodeA, config.PriorityNormal)
			admit(t, be, p, tk, raw, queue.Queued)
		}
		live, liveRaw := ticket(t, be, "k", nodeB, config.PriorityNormal)
		admit(t, be, p, live, liveRaw, queue.Queued)
		if err := be.ResumeKey(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		reps, errs := be.Grant(ctx, []string{"k"}, []queue.Params{p},
			queue.GrantArgs{Node: nodeB[:], Batch: 100, ClaimTimeout: time.Hour, Dead: [][]byte{nodeA[:]}})
		if errs[0] != nil {
			t.Fatal(errs[0])
		}
		if rep := reps[0]; len(rep.Local) != 1 || len(rep.Remote) != 0 {
			t.Fatalf("grant with A dead: %+v; want B's ticket only", rep)
		}
		st, err := be.State(ctx, "k", p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Counters[queue.CountAbandoned] != 2 || st.Counters[queue.CountRefunded] != 1 || st.Unclaimed != 0 || st.Queued != [4]int{} {
			t.Fatalf("state %+v", st)
		}
	})
}

// TestHeartbeats: a node is alive while its heartbeat lasts, and not after Forget or its TTL;
// a heartbeat reports whether the one before had lapsed (or was never there).
func TestHeartbeats(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		nodeA, nodeB := uuid.New(), uuid.New()
		if lapsed, err := be.Heartbeat(ctx, nodeA[:], time.Hour); err != nil || !lapsed {
			t.Fatalf("first heartbeat: lapsed %v, %v; want true", lapsed, err)
		}
		if lapsed, err := be.Heartbeat(ctx, nodeA[:], time.Hour); err != nil || lapsed {
			t.Fatalf("heartbeat within the TTL: lapsed %v, %v; want false", lapsed, err)
		}
		if _, err := be.Heartbeat(ctx, nodeB[:], 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		other := uuid.New()
		alive, err := be.Alive(ctx, [][]byte{nodeA[:], nodeB[:], other[:]})
		if err != nil || !alive[0] || !alive[1] || alive[2] {
			t.Fatalf("alive %v, %v", alive, err)
		}
		time.Sleep(100 * time.Millisecond)
		be.Forget(ctx, nodeA[:])
		alive, _ = be.Alive(ctx, [][]byte{nodeA[:], nodeB[:]})
		if alive[0] || alive[1] {
			t.Fatalf("after Forget and the TTL: alive %v", alive)
		}
		if lapsed, err := be.Heartbeat(ctx, nodeB[:], time.Hour); err != nil || !lapsed {
			t.Fatalf("heartbeat after the TTL: lapsed %v, %v; want true", lapsed, err)
		}
	})
}

// TestCountersAddedOnce: a batch of counts sent again (its first reply lost) is added once; a
// later batch of the node, and another node's batch of the same number, are added; the batches
// of several keys sent in one call each reach their key.
func TestCountersAddedOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 5, Window: time.Second})
		a, b := uuid.New(), uuid.New()
		for _, batch := range []queue.CountBatch{
			{Node: a[:], Seq: 1, Deltas: map[string]int64{queue.CountSucceeded: 3}},
			{Node: a[:], Seq: 1, Deltas: map[string]int64{queue.CountSucceeded: 3}}, // sent again
			{Node: a[:], Seq: 2, Deltas: map[string]int64{queue.CountSucceeded: 1, queue.CountFailed: 2}},
			{Node: b[:], Seq: 1, Deltas: map[string]int64{queue.CountSucceeded: 10}},
			{Node: a[:], Seq: 2, Deltas: map[string]int64{queue.CountSucceeded: 1, queue.CountFailed: 2}}, // again
		} {
			if err := be.AddCounters(ctx, []queue.CountCall{{Key: "k", P: p, Batch: batch}})[0]; err != nil {
				t.Fatal(err)
			}
		}
		st, err := be.State(ctx, "k", p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Counters[queue.CountSucceeded]; got != 14 {
			t.Errorf("succeeded = %d; want 14 (3 + 1 + 10)", got)
		}
		if got := st.Counters[queue.CountFailed]; got != 2 {
			t.Errorf("failed = %d; want 2", got)
		}

		// Several keys' batches in one call, one of them twice: each key gets its own.
		var calls []queue.CountCall
		for i, key := range []string{"x", "y", "z", "x"} {
			calls = append(calls, queue.CountCall{Key: key, P: p,
				Batch: queue.CountBatch{Node: a[:], Seq: 3, Deltas: map[string]int64{queue.CountSucceeded: int64(len(key) + i%3)}}})
		}
		for i, err := range be.AddCounters(ctx, calls) {
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		for key, want := range map[string]int64{"x": 1, "y": 2, "z": 3, "k": 14} {
			st, err := be.State(ctx, key, p)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Counters[queue.CountSucceeded]; got != want {
				t.Errorf("%s: succeeded = %d; want %d", key, got, want)
			}
		}
	})
}

// TestDuplicateTicketGrantedOnce: a ticket queued twice (an admit that the Redis client sent
// again after a connection error cut its reply) is granted once, whether its copies meet in one
// grant step or in two; the second copy leaves the line, counted as a duplicate.
func TestDuplicateTicketGrantedOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 10, Window: time.Minute})
		if err := be.PauseKey(ctx, "k", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		tk, raw := ticket(t, be, "k", nodeA, config.PriorityNormal)
		admit(t, be, p, tk, raw, queue.Queued)
		admit(t, be, p, tk, raw, queue.Queued) // sent again
		if err := be.ResumeKey(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		rep := grant(t, be, "k", p, nodeA)
		if len(rep.Local) != 1 {
			t.Fatalf("granted %d copies of one ticket in one step; want 1", len(rep.Local))
		}
		// A copy queued after the first was granted (the retried admit came late).
		if err := be.PauseKey(ctx, "k", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		admit(t, be, p, tk, raw, queue.Queued)
		if err := be.ResumeKey(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if rep := grant(t, be, "k", p, nodeA); len(rep.Local) != 0 {
			t.Fatalf("granted a later copy of a ticket granted already: %+v", rep)
		}
		st, err := be.State(ctx, "k", p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Counters[queue.CountGranted] != 1 || st.Counters[queue.CountDuplicate] != 2 || st.Queued != [4]int{} {
			t.Fatalf("granted %d, duplicates %d, queued %v; want 1, 2, none", st.Counters[queue.CountGranted],
				st.Counters[queue.CountDuplicate], st.Queued)
		}

		// Two copies granted by another node in one step: one grant for the owner to claim.
		if err := be.PauseKey(ctx, "r", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		tr, rawR := ticket(t, be, "r", nodeA, config.PriorityNormal)
		admit(t, be, p, tr, rawR, queue.Queued)
		admit(t, be, p, tr, rawR, queue.Queued)
		if err := be.ResumeKey(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		if rep := grant(t, be, "r", p, nodeB); len(rep.Remote) != 1 || len(rep.Local) != 0 {
			t.Fatalf("grant by another node: %+v; want one remote grant", rep)
		}
		if st, err := be.State(ctx, "r", p); err != nil || st.Counters[queue.CountGranted] != 1 || st.Counters[queue.CountDuplicate] != 1 {
			t.Fatalf("granted %d, duplicates %d (%v); want 1, 1", st.Counters[queue.CountGranted], st.Counters[queue.CountDuplicate], err)
		}

		// A copy behind a job that keeps its place (no live node runs its handler): the copy
		// leaves from the middle of the line, the job stays.
		if err := be.PauseKey(ctx, "s", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		ts, rawS := ticket(t, be, "s", nodeA, config.PriorityNormal)
		admit(t, be, p, ts, rawS, queue.Queued)
		enqueueJob(t, be, p, "s", "nobody", 0)
		admit(t, be, p, ts, rawS, queue.Queued)
		if err := be.ResumeKey(ctx, "s"); err != nil {
			t.Fatal(err)
		}
		if rep := grant(t, be, "s", p, nodeA); len(rep.Local) != 1 || len(rep.Jobs) != 0 {
			t.Fatalf("grant: %+v; want the request once and no job", rep)
		}
		if st, err := be.State(ctx, "s", p); err != nil || st.Queued != [4]int{0, 1, 0, 0} || st.Counters[queue.CountDuplicate] != 1 {
			t.Fatalf("queued %v, duplicates %d (%v); want the job alone in line, 1", st.Queued, st.Counters[queue.CountDuplicate], err)
		}
		if rep := grantJobs(t, be, p, "s", nodeA, []string{"nobody"}, 1, time.Minute); len(rep.Jobs) != 1 || len(rep.Local) != 0 {
			t.Fatalf("grant by a node that runs the job's handler: %+v; want the job", rep)
		}
	})
}

// TestCancelTakesEveryCopy: a cancel takes every copy of a ticket out of the line and gives
// back a grant one of them holds, so nothing of a caller who left stays behind.
func TestCancelTakesEveryCopy(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 10, Window: time.Minute})
		if err := be.PauseKey(ctx, "k", queue.PausedForever); err != nil {
			t.Fatal(err)
		}
		tk, raw := ticket(t, be, "k", nodeA, config.PriorityNormal)
		admit(t, be, p, tk, raw, queue.Queued)
		admit(t, be, p, tk, raw, queue.Queued) // sent again
		if err := be.ResumeKey(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		rep := grantWith(t, be, "k", p, queue.GrantArgs{Node: nodeA[:], Batch: 1, ClaimTimeout: 5 * time.Second})
		if len(rep.Local) != 1 {
			t.Fatalf("granted %d; want the first copy", len(rep.Local))
		}
		// Its reply lost, the caller leaves: one cancel takes the copy left and the grant.
		if out, err := be.Cancel(ctx, p, tk, raw); err != nil || out != queue.Refunded {
			t.Fatalf("cancel: %v, %v; want Refunded", out, err)
		}
		st, err := be.State(ctx, "k", p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Queued != [4]int{} || st.Counters[queue.CountRefunded] != 1 || st.Counters[queue.CountCancelled] != 1 {
			t.Fatalf("queued %v, refunded %d, cancelled %d; want none, 1, 1", st.Queued,
				st.Counters[queue.CountRefunded], st.Counters[queue.CountCancelled])
		}
		if d, err := be.Check(ctx, "k", p, 1); err != nil || d.Remaining != 10 {
			t.Fatalf("remaining %d, %v; want the window whole", d.Remaining, err)
		}
	})
}

// claimOne runs Claim for tickets of one key.
func claimOne(ctx context.Context, be queue.Backend, key string, p queue.Params, ts []*queue.Ticket, raws [][]byte) ([]queue.ClaimStatus, []int64, error) {
	res := be.Claim(ctx, []queue.ClaimCall{{Key: key, P: p, Tickets: ts, Raws: raws}})[0]
	return res.Status, res.At, res.Err
}
