package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

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
	return out
}

// TestEnqueueAllAsSequentialEnqueues: the jobs of several keys, interleaved, sent together as
// concurrent Enqueues are (one script call per key's run of jobs alike, a job unlike its
// neighbours on its own, all in one round trip), get the answers the same jobs get when
// enqueued one by one in the same order, and leave the same lines, records and schedules:
// a job refused (its deadline out of reach, the line full) stops none after it, each job
// waits until its own deadline, priorities, costs, tenants and scheduled jobs in between.
func TestEnqueueAllAsSequentialEnqueues(t *testing.T) {
	for name, open := range topologies {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb, prefix := open(t)
			hook := &redistest.CommandCounter{Names: []string{"evalsha", "eval", "fcall"}}
			rdb.AddHook(hook)
			r := NewRedis(rdb, prefix, 4)
			ctx := context.Background()
			if err := r.LoadScripts(ctx); err != nil {
				t.Fatal(err)
			}
			cases := enqueueCases()
			one := make([][]AdmitReply, len(cases))
			jobs1 := make([][]callArgs, len(cases))
			for i, c := range cases {
				jobs1[i] = enqueueCaseJobs(t, r, c, "one-"+c.name)
				for j, a := range jobs1[i] {
					rep, err := r.enqueueOne(ctx, a)
					if err != nil {
						t.Fatalf("%s: job %d: %v", c.name, j, err)
					}
					one[i] = append(one[i], rep)
				}
			}
			var batch []*batchCall
			jobsN := make([][]callArgs, len(cases))
			for i, c := range cases {
				jobsN[i] = enqueueCaseJobs(t, r, c, "many-"+c.name)
			}
			for j := range cases[0].prios {
				for i := range cases {
					batch = append(batch, &batchCall{callArgs: jobsN[i][j]})
				}
			}
			before := hook.Count()
			r.enqueueAll(ctx, batch)
			// One call for each run of jobs of a key alike (priority, cost, tenant, now):
			// with the interleaving above, the runs of each case's jobs.
			want := int64(0)
			for i := range cases {
				for j := range cases[i].prios {
					if j == 0 || !sameShape(batch[(j-1)*len(cases)+i], batch[j*len(cases)+i]) {
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
				if refusals == 0 || refusals == len(c.prios) {
					t.Errorf("%s: %d of %d jobs refused; the case means some refused and some not", c.name, refusals, len(c.prios))
				}
				seq, many := lines(t, r, "one-"+c.name, raws1), lines(t, r, "many-"+c.name, rawsN)
				if fmt.Sprint(seq) != fmt.Sprint(many) {
					t.Errorf("%s: lines (job indexes by priority) %v, one by one %v", c.name, many, seq)
				}
				if s1, sN := kept(t, r, "one-"+c.name, c.p, jobs1[i]), kept(t, r, "many-"+c.name, c.p, jobsN[i]); s1 != sN {
					t.Errorf("%s: records and schedule %s, one by one %s", c.name, sN, s1)
				}
			}
		})
	}
}

// kept says which of jobs of key have a record, and which are scheduled, by index.
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
	return fmt.Sprintf("records %v, scheduled %v", recs, sched)
}
