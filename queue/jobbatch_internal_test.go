package queue

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
)

// enqueueCase is a key and the jobs enqueued to it: what enqueueAll must answer as the same
// enqueues sent one by one would.
type enqueueCase struct {
	admitCase
	// tenants are the jobs' tenants, by index (nil: none); later, the jobs due an hour from
	// now (scheduled).
	tenants []string
	later   map[int]bool
	// requests are admitted to the key before its jobs: the first Max granted, the others
	// queued.
	requests int
	// sameID gives job i the id of job sameID[i], an earlier one of the case; waiting and
	// kept mark the jobs whose id is, before the case's jobs, of a job waiting in the line
	// (the job itself, enqueued once before) or of a result kept (as a run's end leaves it).
	sameID        map[int]int
	waiting, kept map[int]bool
	// unfair marks a line whose state still says it is fair though it is empty, as a fair
	// line's state is left when its entries lapse.
	unfair bool
}

func enqueueCases() []enqueueCase {
	n, h, l, c := config.PriorityNormal, config.PriorityHigh, config.PriorityLow, config.PriorityCritical
	prios := []config.Priority{n, n, h, n, n, c, n, l, n, n}
	// Jobs 4, 6 and 8 cannot wait the minute a slot takes once three are ahead of them: they
	// are refused, and the jobs after each are queued (a refusal stops nothing).
	near := map[int]bool{4: true, 6: true, 8: true}
	var cases []enqueueCase
	for _, alg := range []config.Algorithm{config.SlidingWindow, config.FixedWindow, config.TokenBucket} {
		lim := config.Limit{Algorithm: alg, Max: 3, Window: time.Minute, Burst: 3, MaxQueue: 20}.WithDefaults()
		full := lim
		full.MaxQueue = 4
		units := lim
		units.Also[0] = config.Rate{Max: 10, Window: time.Minute, Units: true}
		add := func(name string, l config.Limit, near map[int]bool) *enqueueCase {
			cases = append(cases, enqueueCase{admitCase: admitCase{name: fmt.Sprintf("%s-%d", name, alg), near: near,
				prios: prios, p: Params{Limit: l, ExtPause: NotPaused, StatsTTL: time.Minute}}})
			return &cases[len(cases)-1]
		}
		add("deadline", lim, near)
		add("full", full, nil)
		add("costs", units, near).costs = []int64{4, 4, 1, 2, 4, 4, 1, 4, 4, 2}
		add("tenants", lim, near).tenants = []string{"a", "b", "a", "a", "b", "", "b", "a", "a", "b"}
		add("scheduled", lim, near).later = map[int]bool{2: true, 3: true, 7: true}
		// Jobs evict the oldest requests of a full line, then are refused once only jobs wait.
		drop := full
		drop.Overflow = config.DropOldest
		add("drop", drop, nil).requests = 6
		add("paused", lim, nil).p.ExtPause = PausedForever
		// Runs of ten jobs alike, one script call each: the cost units of the jobs of the call
		// ahead refuse jobs 2 and 5 (two of cost 5 fill the ten units of a minute).
		alike := []config.Priority{n, n, n, n, n, n, n, n, n, n}
		costly := add("costs-alike", units, map[int]bool{2: true, 5: true})
		costly.prios, costly.costs = alike, []int64{5, 5, 5, 5, 5, 5, 5, 5, 5, 5}
		named := add("named", lim, map[int]bool{8: true})
		named.prios, named.sameID = alike, map[int]int{1: 0, 4: 2, 9: 3}
		named.waiting, named.kept = map[int]bool{3: true}, map[int]bool{6: true}
		lapsed := add("lapsed-fair", lim, map[int]bool{8: true})
		lapsed.prios, lapsed.unfair = alike, true
		shared := add("tenant-alike", lim, map[int]bool{8: true})
		shared.prios, shared.tenants = alike, []string{"a", "a", "a", "a", "a", "a", "a", "a", "a", "a"}
	}
	return cases
}

// enqueueCaseJobs makes the jobs of c for key: their tickets, encodings and records, and when
// each is to join its line.
func enqueueCaseJobs(t *testing.T, r *Redis, c enqueueCase, key string) []callArgs {
	t.Helper()
	tks, _ := caseTickets(t, r, c.admitCase, key)
	out := make([]callArgs, len(tks))
	for i, tk := range tks {
		tk.Handler = "h"
		if c.tenants != nil && c.tenants[i] != "" {
			tk.Tenant, tk.Weight = c.tenants[i], 1
		}
		j := &Job{Key: key, Handler: "h", Payload: []byte{byte(i)}, Priority: tk.Priority, Wait: tk.Deadline - tk.Enqueued,
			Owner: tk.Owner, ResultTTL: 60_000, Enqueued: tk.Enqueued, Cost: tk.Cost, Tenant: tk.Tenant, Weight: tk.Weight}
		if c.later[i] {
			out[i].runAt = tk.Enqueued + time.Hour.Microseconds()
			j.Schedule()
		}
		var err error
		if out[i].raw, err = tk.Encode(); err != nil {
			t.Fatal(err)
		}
		if out[i].job, err = j.Encode(); err != nil {
			t.Fatal(err)
		}
		out[i].p, out[i].t = c.p, tk
	}
	for i, j := range c.sameID {
		out[i].t.ID = out[j].t.ID
		var err error
		if out[i].raw, err = out[i].t.Encode(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	names := r.ks.withJobs(key, c.p.Limit)
	for i := range c.waiting {
		if rep, err := r.enqueueOne(ctx, out[i]); err != nil || rep.Outcome != Queued {
			t.Fatalf("job %d enqueued before: %+v, %v", i, rep, err)
		}
	}
	for i := range c.kept {
		// The result expiry set: the result kept an hour.
		expiry := redis.Z{Score: float64(out[i].t.Enqueued + time.Hour.Microseconds()), Member: string(out[i].t.ID)}
		if err := r.rdb.ZAdd(ctx, names[kJobs+3], expiry).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if c.unfair {
		q := c.prios[0].Line()
		if err := r.rdb.HSet(ctx, names[kFair], fmt.Sprintf("v%d", q), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestEnqueueAllAsSequentialEnqueues: the jobs of several keys, interleaved, sent together as
// concurrent Enqueues are (one script call per key's run of jobs alike, a job unlike its
// neighbours on its own, all in one round trip), get the answers the same jobs get when
// enqueued one by one in the same order, and leave the same lines, records and schedules:
// a job refused (its deadline out of reach, the line full) stops none after it, each job
// waits until its own deadline, priorities, costs, tenants and scheduled jobs in between.
func TestEnqueueAllAsSequentialEnqueues(t *testing.T) {
	onEachTopology(t, func(t *testing.T, _ string, r *Redis, hook *redistest.CommandCounter) {
		ctx := context.Background()
		clearOfMinuteEnd(t, r)
		cases := enqueueCases()
		one := make([][]AdmitReply, len(cases))
		jobs1 := make([][]callArgs, len(cases))
		for i, c := range cases {
			admitRequests(t, r, c, "one-"+c.name)
			jobs1[i] = enqueueCaseJobs(t, r, c, "one-"+c.name)
			for j, a := range jobs1[i] {
				rep, err := r.enqueueOne(ctx, a)
				if err != nil {
					t.Fatalf("%s: job %d: %v", c.name, j, err)
				}
				one[i] = append(one[i], rep)
			}
		}
		var batch []*admitCall
		jobsN := make([][]callArgs, len(cases))
		for i, c := range cases {
			admitRequests(t, r, c, "many-"+c.name)
			jobsN[i] = enqueueCaseJobs(t, r, c, "many-"+c.name)
		}
		for j := range cases[0].prios {
			for i := range cases {
				batch = append(batch, &admitCall{a: jobsN[i][j]})
			}
		}
		before := hook.Count()
		r.enqueueAll(ctx, batch)
		// One call for each run of jobs of a key alike (priority, cost, tenant, now):
		// with the interleaving above, the runs of each case's jobs.
		want := int64(0)
		for i := range cases {
			for j := range cases[i].prios {
				if j == 0 || !sameShape(batch[(j-1)*len(cases)+i].a, batch[j*len(cases)+i].a) {
					want++
				}
			}
		}
		if calls := hook.Count() - before; calls != want {
			t.Errorf("%d enqueues took %d script calls, want %d", len(batch), calls, want)
		}
		for i, c := range cases {
			var raws1, rawsN [][]byte
			for j := range c.prios {
				raws1, rawsN = append(raws1, jobs1[i][j].raw), append(rawsN, jobsN[i][j].raw)
			}
			refusals := 0
			for j := range c.prios {
				call := batch[j*len(cases)+i]
				if call.err != nil {
					t.Fatalf("%s: job %d: %v", c.name, j, call.err)
				}
				if refused(call.rep) {
					refusals++
				}
				compareAdmit(t, fmt.Sprintf("%s: job %d", c.name, j), one[i][j], raws1, call.rep, rawsN)
			}
			if c.p.ExtPause == NotPaused && (refusals == 0 || refusals == len(c.prios)) {
				t.Errorf("%s: %d of %d jobs refused; the case means some refused and some not", c.name, refusals, len(c.prios))
			}
			seq, many := lines(t, r, "one-"+c.name, raws1), lines(t, r, "many-"+c.name, rawsN)
			if fmt.Sprint(seq) != fmt.Sprint(many) {
				t.Errorf("%s: lines (job indexes by priority) %v, one by one %v", c.name, many, seq)
			}
			if l1, lN := lineTTLs(t, r, "one-"+c.name), lineTTLs(t, r, "many-"+c.name); !sameTTLs(l1, lN) {
				t.Errorf("%s: the lines live %v, one by one %v", c.name, lN, l1)
			}
			if s1, sN := kept(t, r, "one-"+c.name, c.p, jobs1[i]), kept(t, r, "many-"+c.name, c.p, jobsN[i]); s1 != sN {
				t.Errorf("%s: records and schedule %s, one by one %s", c.name, sN, s1)
			}
		}
	})
}

// admitRequests admits c's requests to key.
func admitRequests(t *testing.T, r *Redis, c enqueueCase, key string) {
	t.Helper()
	tks, raws := caseTickets(t, r, admitCase{prios: make([]config.Priority, c.requests)}, key)
	for i, tk := range tks {
		if _, err := r.admitOne(context.Background(), callArgs{p: c.p, t: tk, raw: raws[i]}); err != nil {
			t.Fatal(err)
		}
	}
}

// lineTTLs returns the time to live of each of key's lines (-2 for a line that is not there,
// -1 for one with no TTL).
func lineTTLs(t *testing.T, r *Redis, key string) [config.NumPriorities]time.Duration {
	t.Helper()
	var out [config.NumPriorities]time.Duration
	names := r.ks.perKey(key, config.Limit{})
	for q := range out {
		d, err := r.rdb.PTTL(context.Background(), names[1+q]).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[q] = d
	}
	return out
}

// sameTTLs reports whether a and b, lineTTLs' of two keys filled a moment apart, agree: the
// same lines there, each with a TTL, within 5 seconds of each other.
func sameTTLs(a, b [config.NumPriorities]time.Duration) bool {
	for q := range a {
		if (a[q] < 0 || b[q] < 0) && a[q] != b[q] || max(a[q]-b[q], b[q]-a[q]) > 5*time.Second {
			return false
		}
	}
	return true
}

// kept says which of jobs of key have a record, and which are scheduled, by index, and what
// the key's counters hold.
func kept(t *testing.T, r *Redis, key string, p Params, jobs []callArgs) string {
	t.Helper()
	names := r.ks.withJobs(key, p.Limit)
	var recs, sched []int
	for i, a := range jobs {
		n, err := r.rdb.HExists(context.Background(), names[kJobs], string(a.t.ID)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n {
			recs = append(recs, i)
		}
		if _, err := r.rdb.ZScore(context.Background(), names[kSched], string(a.t.ID)).Result(); err == nil {
			sched = append(sched, i)
		}
	}
	st, err := r.State(context.Background(), key, p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("records %v, scheduled %v, counters %v", recs, sched, st.Counters)
}

// TestFinishAllAsSequentialFinishes: the ends of runs of several keys, interleaved, sent
// together as concurrent FinishJob calls are (one JobDoneMany call per key, all in one round
// trip), get the answers the same ends get when sent one by one in the same order, and leave
// the same results, retries, dead letters and lines: a result kept (and its waiter woken), a
// retry, a last failure, a run given back, a stale run, a run cancelled while it ran, one
// run's end sent twice (the second finds it ended), and a run that failed, to be retried, sent
// again as done (it finds the job waiting for its retry).
func TestFinishAllAsSequentialFinishes(t *testing.T) {
	onEachTopology(t, func(t *testing.T, _ string, r *Redis, hook *redistest.CommandCounter) {
		ctx := context.Background()
		want := []Finish{FinishDone, FinishRetry, FinishDead, FinishRequeued, FinishStale, FinishCancelled, FinishDone, FinishStale,
			FinishStale}
		keys := []string{"one", "many-a", "many-b"}
		ends := make([][]RunEnd, len(keys))
		for i, key := range keys {
			ends[i] = runsToEnd(t, r, key)
		}
		var got [][]finishReply
		var seq []finishReply
		for _, e := range ends[0] {
			rep, err := r.finishOne(ctx, finishArgs{k: keys[0], p: finishParams, e: e})
			if err != nil {
				t.Fatal(err)
			}
			seq = append(seq, rep)
		}
		var batch []*finishCall
		for j := range ends[1] {
			for i := 1; i < len(keys); i++ {
				batch = append(batch, &finishCall{a: finishArgs{k: keys[i], p: finishParams, e: ends[i][j]}})
			}
		}
		before := hook.Count()
		r.finishAll(ctx, batch)
		if calls, want := hook.Count()-before, int64(len(keys)-1); calls != want {
			t.Errorf("%d ends of runs of %d keys took %d script calls, want %d", len(batch), len(keys)-1, calls, want)
		}
		for i := 1; i < len(keys); i++ {
			var reps []finishReply
			for j := range ends[i] {
				c := batch[j*(len(keys)-1)+i-1]
				if c.err != nil {
					t.Fatalf("%s: run %d: %v", keys[i], j, c.err)
				}
				reps = append(reps, c.rep)
			}
			got = append(got, reps)
		}
		for j, w := range want {
			if seq[j].f != w || (seq[j].woken != (j == 0)) {
				t.Errorf("one by one, run %d: %+v, want %v (woken only for run 0)", j, seq[j], w)
			}
			for i, reps := range got {
				if reps[j] != seq[j] {
					t.Errorf("%s: run %d: %+v, one by one %+v", keys[i+1], j, reps[j], seq[j])
				}
			}
		}
		for i, key := range keys {
			if s0, s := finished(t, r, keys[0], ends[0]), finished(t, r, key, ends[i]); s != s0 {
				t.Errorf("%s: %s; one by one: %s", key, s, s0)
			}
		}
	})
}

var finishParams = Params{Limit: config.Limit{Max: 100, Window: time.Minute}.WithDefaults(), ExtPause: NotPaused, StatsTTL: time.Minute}

// runsToEnd enqueues seven jobs on key and grants them to one node, asks for the first's
// result (a waiter) and cancels the sixth; it returns the ends of their runs that
// TestFinishAllAsSequentialFinishes sends: done, failed with a retry left, failed with none,
// given back, of a run that is not the current one, failed (cancelled), done, done again, and
// the second's again, done.
func runsToEnd(t *testing.T, r *Redis, key string) []RunEnd {
	t.Helper()
	ctx := context.Background()
	c := enqueueCase{admitCase: admitCase{prios: make([]config.Priority, 7), p: finishParams}}
	jobs := enqueueCaseJobs(t, r, c, key)
	for i, a := range jobs {
		if i == 1 { // a retry left
			j, err := decodeJob(a.job)
			if err != nil {
				t.Fatal(err)
			}
			j.MaxRetries = 1
			if jobs[i].job, err = j.Encode(); err != nil {
				t.Fatal(err)
			}
		}
		if rep, err := r.enqueueOne(ctx, jobs[i]); err != nil || rep.Outcome != Queued {
			t.Fatalf("enqueue %d: %+v, %v", i, rep, err)
		}
	}
	reps, errs := r.Grant(ctx, []string{key}, []Params{finishParams}, GrantArgs{Node: jobs[0].t.Owner, Batch: 10,
		ClaimTimeout: time.Second, Mine: []string{"h"}, Slots: []int{10}, Lease: time.Minute, Hold: time.Second, MaxLost: 1})
	if errs[0] != nil || len(reps[0].Jobs) != len(jobs) {
		t.Fatalf("grant: %+v, %v; want %d jobs", reps[0], errs[0], len(jobs))
	}
	if _, err := r.Result(ctx, key, jobs[0].t.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.CancelJob(ctx, key, finishParams, jobs[5].t.ID); err != nil {
		t.Fatal(err)
	}
	end := func(i int, o JobOutcome) RunEnd {
		return RunEnd{ID: jobs[i].t.ID, Run: 1, Outcome: o, Data: []byte{byte(i)}, Backoff: time.Minute}
	}
	stale := end(4, RunDone)
	stale.Run = 2
	return []RunEnd{end(0, RunDone), end(1, RunFailed), end(2, RunFailed), end(3, RunGivenBack), stale,
		end(5, RunFailed), end(6, RunDone), end(6, RunDone), end(1, RunDone)}
}

// finished describes what the ends of runs left on key: each job's result, the line, the dead
// letters and the counters.
func finished(t *testing.T, r *Redis, key string, ends []RunEnd) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	names := r.ks.withJobs(key, finishParams.Limit)
	for i, e := range ends {
		res, err := r.Result(ctx, key, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Leased (or waiting for its retry), and waited for.
		_, lerr := r.rdb.ZScore(ctx, names[kJobs+1], string(e.ID)).Result()
		waited, werr := r.rdb.SIsMember(ctx, names[kJobs+4], string(e.ID)).Result()
		if werr != nil {
			t.Fatal(werr)
		}
		fmt.Fprintf(&b, "job %d: %+v, leased %t, waited for %t; ", i, res, lerr == nil, waited)
	}
	st, err := r.State(ctx, key, finishParams)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "waiting %v, jobs %d, dead letters %d, counters %v", st.Queued, st.Jobs, st.DeadLetters, st.Counters)
	return b.String()
}

// together runs calls, each on a goroutine of its own, while b has a flight in the air, and
// lands that flight once every call waits for the next: they then go in one flight, which must
// be one script call (counted by hook).
func together[A, R any](t *testing.T, b *batcher[A, R], hook *redistest.CommandCounter, calls []func()) {
	t.Helper()
	before := hook.Count()
	b.mu.Lock()
	held := b.maxFlying() - b.flying
	b.flying += held // every flight in the air: whoever comes waits
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c()
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		waiting := len(b.pending)
		b.mu.Unlock()
		if waiting == len(calls) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d calls wait for the flight after 10s", waiting, len(calls))
		}
	}
	b.mu.Lock()
	b.flying -= held - 1
	b.landed() // one lands, and hands the lead to the oldest call: it sends them all
	b.mu.Unlock()
	wg.Wait()
	if got := hook.Count() - before; got != 1 {
		t.Errorf("%d calls that waited for one flight took %d script calls, want 1", len(calls), got)
	}
}

// TestConcurrentAdmitsCoalesce: 64 admits of one key that come while a flight is in the air go
// to Redis in one script call when it lands, through Admit as callers send them, and the limit
// holds: exactly Max granted, the rest queued, every one in the line once.
func TestConcurrentAdmitsCoalesce(t *testing.T) {
	r, hook := countedRedis(t, topologies["redis"])
	ctx := context.Background()
	const n, max = 64, 20
	c := admitCase{prios: make([]config.Priority, n),
		p: Params{Limit: config.Limit{Max: max, Window: 10 * time.Second, MaxQueue: n}.WithDefaults(), ExtPause: NotPaused, StatsTTL: time.Minute}}
	tks, raws := caseTickets(t, r, c, "hot")
	reps := make([]AdmitReply, n)
	calls := make([]func(), n)
	for i, tk := range tks {
		calls[i] = func() {
			var err error
			if reps[i], err = r.Admit(ctx, c.p, tk, raws[i]); err != nil {
				t.Error(err)
			}
		}
	}
	together(t, &r.admit, hook, calls)
	var granted, queued int
	for i, rep := range reps {
		switch rep.Outcome {
		case Granted:
			granted++
		case Queued:
			queued++
		default:
			t.Errorf("admit %d: %+v", i, rep)
		}
	}
	if granted != max || queued != n-max {
		t.Errorf("%d granted and %d queued, want %d and %d", granted, queued, max, n-max)
	}
	if st, err := r.State(ctx, "hot", c.p); err != nil || st.Queued[config.PriorityNormal.Line()] != n-max {
		t.Errorf("state %+v, %v: want %d waiting", st, err, n-max)
	}
}

// TestConcurrentEnqueuesCoalesce: 64 enqueues of one key that come while a flight is in the
// air go to Redis in one script call when it lands, through Enqueue as callers send them; each
// job is in its line once, with its record, and the line's bound refuses exactly the jobs past
// it.
func TestConcurrentEnqueuesCoalesce(t *testing.T) {
	r, hook := countedRedis(t, topologies["redis"])
	ctx := context.Background()
	const n, maxQueue = 64, 50
	c := enqueueCase{admitCase: admitCase{prios: make([]config.Priority, n),
		p: Params{Limit: config.Limit{Max: 1000, Window: time.Second, MaxQueue: maxQueue}.WithDefaults(), ExtPause: NotPaused, StatsTTL: time.Minute}}}
	jobs := enqueueCaseJobs(t, r, c, "jobs")
	reps := make([]AdmitReply, n)
	calls := make([]func(), n)
	for i, a := range jobs {
		calls[i] = func() {
			var err error
			if reps[i], err = r.Enqueue(ctx, a.p, a.t, a.raw, a.job, 0); err != nil {
				t.Error(err)
			}
		}
	}
	together(t, &r.enqueues, hook, calls)
	var queued, full int
	for i, rep := range reps {
		switch rep.Outcome {
		case Queued:
			queued++
			if res, err := r.Result(ctx, "jobs", jobs[i].t.ID); err != nil || res.State != JobPending {
				t.Errorf("job %d: %+v, %v; want pending", i, res, err)
			}
		case Full:
			full++
		default:
			t.Errorf("job %d: %+v", i, rep)
		}
	}
	if queued != maxQueue || full != n-maxQueue {
		t.Errorf("%d queued and %d refused as full, want %d and %d", queued, full, maxQueue, n-maxQueue)
	}
	if st, err := r.State(ctx, "jobs", c.p); err != nil || st.Queued[config.PriorityNormal.Line()] != maxQueue {
		t.Errorf("state %+v, %v: want %d waiting", st, err, maxQueue)
	}
}

// TestEnqueuesFlyTwoAtOnce: while one flight of enqueues is in the air, an Enqueue that comes
// goes at once, in a second flight, and is queued; a third waits for one of them to land.
func TestEnqueuesFlyTwoAtOnce(t *testing.T) {
	r, hook := countedRedis(t, topologies["redis"])
	ctx := context.Background()
	c := enqueueCase{admitCase: admitCase{prios: make([]config.Priority, 2),
		p: Params{Limit: config.Limit{Max: 1000, Window: time.Second, MaxQueue: 10}.WithDefaults(), ExtPause: NotPaused, StatsTTL: time.Minute}}}
	jobs := enqueueCaseJobs(t, r, c, "jobs")
	b := &r.enqueues
	b.mu.Lock()
	b.flying++ // one flight in the air, held
	b.mu.Unlock()
	before := hook.Count()
	first := make(chan struct{})
	go func() {
		defer close(first)
		a := jobs[0]
		if rep, err := r.Enqueue(ctx, a.p, a.t, a.raw, a.job, 0); err != nil || rep.Outcome != Queued {
			t.Errorf("enqueue beside a flight in the air: %+v, %v; want queued", rep, err)
		}
	}()
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		b.mu.Lock()
		b.flying--
		b.landed() // let it go, so the test ends
		b.mu.Unlock()
		<-first
		t.Fatal("an enqueue beside one flight in the air waited for it to land")
	}
	if got := hook.Count() - before; got != 1 {
		t.Errorf("enqueue beside a flight in the air took %d script calls, want 1", got)
	}
	b.mu.Lock()
	b.flying++ // two held: the next waits
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a := jobs[1]
		if rep, err := r.Enqueue(ctx, a.p, a.t, a.raw, a.job, 0); err != nil || rep.Outcome != Queued {
			t.Errorf("enqueue after two flights: %+v, %v; want queued", rep, err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		waiting := len(b.pending)
		b.mu.Unlock()
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an enqueue with two flights in the air does not wait after 10s")
		}
	}
	b.mu.Lock()
	b.flying--
	b.landed() // the other lands: the waiting enqueue leads the next flight
	b.mu.Unlock()
	<-done
}

// TestConcurrentFinishesCoalesce: the ends of 64 runs of one key that come, with the deadline a
// processor gives them, while a flight is in the air go to Redis in one script call when it
// lands, through FinishJob; each job ends with its own result.
func TestConcurrentFinishesCoalesce(t *testing.T) {
	r, hook := countedRedis(t, topologies["redis"])
	ctx := context.Background()
	const n = 64
	c := enqueueCase{admitCase: admitCase{prios: make([]config.Priority, n), p: finishParams}}
	jobs := enqueueCaseJobs(t, r, c, "jobs")
	for i, a := range jobs {
		if rep, err := r.enqueueOne(ctx, a); err != nil || rep.Outcome != Queued {
			t.Fatalf("enqueue %d: %+v, %v", i, rep, err)
		}
	}
	g, errs := r.Grant(ctx, []string{"jobs"}, []Params{finishParams}, GrantArgs{Node: jobs[0].t.Owner, Batch: n,
		ClaimTimeout: time.Second, Mine: []string{"h"}, Slots: []int{n}, Lease: time.Minute, Hold: time.Second, MaxLost: 1})
	if errs[0] != nil || len(g[0].Jobs) != n {
		t.Fatalf("grant: %+v, %v; want %d jobs", g[0], errs[0], n)
	}
	calls := make([]func(), n)
	for i, j := range g[0].Jobs {
		calls[i] = func() {
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			f, _, err := r.FinishJob(fctx, "jobs", finishParams, RunEnd{ID: j.ID, Run: j.Job.Runs, Outcome: RunDone, Data: j.ID})
			if err != nil || f != FinishDone {
				t.Errorf("finish: %v, %v", f, err)
			}
		}
	}
	together(t, &r.finishes, hook, calls)
	for _, j := range g[0].Jobs {
		if res, err := r.Result(ctx, "jobs", j.ID); err != nil || res.State != JobEnded || string(res.Data) != string(j.ID) {
			t.Errorf("job %x: %+v, %v; want ended with its own result", j.ID, res, err)
		}
	}
}

// TestEnqueueManyStopsAtTheFirstRefusal: an EnqueueMany of jobs alike (one priority, cost 1, no
// tenant: the batch script's plain way) whose fifth job may wait only a millisecond, while
// three ahead of it fill the limit's three slots, answers the four jobs queued and the refusal,
// and tries no job after it: two of them could wait (their deadline is an hour away), and none
// is queued; the refusal is counted once.
func TestEnqueueManyStopsAtTheFirstRefusal(t *testing.T) {
	onEachTopology(t, func(t *testing.T, _ string, r *Redis, _ *redistest.CommandCounter) {
		ctx := context.Background()
		for _, alg := range []config.Algorithm{config.SlidingWindow, config.FixedWindow, config.TokenBucket} {
			lim := config.Limit{Algorithm: alg, Max: 3, Window: time.Minute, Burst: 3, MaxQueue: 20}.WithDefaults()
			n := config.PriorityNormal
			c := enqueueCase{admitCase: admitCase{name: fmt.Sprintf("stop-%d", alg),
				prios: []config.Priority{n, n, n, n, n, n, n}, p: Params{Limit: lim, ExtPause: NotPaused, StatsTTL: time.Minute}}}
			args := enqueueCaseJobs(t, r, c, c.name)
			// A millisecond: no slot comes so soon, not even a fixed window's next one.
			args[4].t.Deadline = args[4].t.Enqueued + time.Millisecond.Microseconds()
			var err error
			if args[4].raw, err = args[4].t.Encode(); err != nil {
				t.Fatal(err)
			}
			jobs := make([]NewJob, len(args))
			raws := make([][]byte, len(args))
			for i, a := range args {
				jobs[i], raws[i] = NewJob{Ticket: a.t, Raw: a.raw, Record: a.job}, a.raw
			}
			reps, err := r.EnqueueMany(ctx, c.p, jobs)
			if err != nil || len(reps) != 5 || reps[4].Outcome != WouldExceed {
				t.Fatalf("%s: %d replies, %v; want four queued and a refusal (%+v)", c.name, len(reps), err, reps)
			}
			for i, rep := range reps[:4] {
				if rep.Outcome != Queued || rep.LineBefore != i {
					t.Fatalf("%s: job %d: %+v; want queued behind %d", c.name, i, rep, i)
				}
			}
			if got := lines(t, r, c.name, raws); fmt.Sprint(got) != "[[] [0 1 2 3] [] []]" {
				t.Fatalf("%s: lines (job indexes by priority) %v; want the first four in the normal line", c.name, got)
			}
			st, err := r.State(ctx, c.name, c.p)
			if err != nil || st.Counters["rejected"] != 1 || st.Counters["queued"] != 4 {
				t.Fatalf("%s: counters %v, %v; want 4 queued and 1 rejected", c.name, st.Counters, err)
			}
		}
	})
}
