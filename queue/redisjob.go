package queue

// The Redis backend's durable jobs: enqueue, a run's end, lease renewal, results, the
// handler registry and dead letters.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/lua"
)

func (r *Redis) runJobs(ctx context.Context, s *redis.Script, key string, p Params, extra ...any) (any, error) {
	return r.eval(ctx, s, r.ks.withJobsArgs(key, p.Limit), args(p, extra...)...).Result()
}

// Enqueue sends concurrent enqueues together (r.enqueues): the jobs of one key alike in all
// that enqueue_many.lua takes once (enqueueAll) as one script call that tries each in the order
// they came; a lone one, or one unlike the others, as Enqueue. The job of a caller who stops
// waiting at its deadline (ErrNoAnswer) may have been queued, as when any reply is lost.
func (r *Redis) Enqueue(ctx context.Context, p Params, t *Ticket, raw []byte, job []byte, runAt int64) (AdmitReply, error) {
	rep, err := r.enqueues.do(ctx, callArgs{p: p, t: t, raw: raw, job: job, runAt: runAt})
	if err != nil {
		return AdmitReply{}, fmt.Errorf("queue: enqueue %q: %w", t.Key, err)
	}
	return rep, nil
}

// enqueueOne sends one enqueue on its own.
func (r *Redis) enqueueOne(ctx context.Context, a callArgs) (AdmitReply, error) {
	cmd := r.enqueueCmd(ctx, a)
	r.evalPipelined(ctx, []*redis.Cmd{cmd})
	return answerOne(cmd)
}

// enqueueCmd returns the unsent call of Enqueue for one job.
func (r *Redis) enqueueCmd(ctx context.Context, a callArgs) *redis.Cmd {
	t, l := a.t, a.p.Limit
	extra := []any{a.raw, t.ID, t.Priority.Line(), t.Deadline, l.MaxQueue, int(l.Overflow), 0, a.job, a.runAt, t.CostOf()}
	if t.Tenant != "" {
		extra = append(extra, t.Tenant, max(1, t.Weight))
	}
	return evalSHA(ctx, lua.Enqueue, r.ks.withJobsArgs(t.Key, l), args(a.p, extra...)...)
}

// enqueueAll sends the enqueues of batch in one round trip and gives each call its answer:
// the jobs of one key that enqueue_many.lua may take together (sameShape) as one EnqueueMany
// call in which a job refused does not stop those after it, every other as Enqueue.
func (r *Redis) enqueueAll(ctx context.Context, batch []*admitCall) {
	sendGroups(ctx, r, groupCalls(batch, sameShape), func(g []*admitCall) *redis.Cmd {
		if len(g) == 1 {
			return r.enqueueCmd(ctx, g[0].a)
		}
		jobs := make([]NewJob, len(g))
		for j, c := range g {
			jobs[j] = NewJob{Ticket: c.a.t, Raw: c.a.raw, Record: c.a.job}
		}
		return r.enqueueManyCmd(ctx, g[0].a.p, jobs, true)
	}, func(g []*admitCall, v any) ([]AdmitReply, error) {
		if len(g) == 1 {
			return admitAnswers(g, v)
		}
		reps, err := parseEnqueueMany(v, len(g), true)
		if err != nil {
			return nil, fmt.Errorf("reply: %w", err)
		}
		return reps, nil
	})
}

// sameShape reports whether the jobs of a and b, of one key, may go in one EnqueueMany: alike
// in what it takes once for all (Params, priority, cost, tenant), and both to join the line
// now (a scheduled job goes alone).
func sameShape(a, b callArgs) bool {
	return a.p == b.p && a.runAt == 0 && b.runAt == 0 && a.t.Priority == b.t.Priority &&
		a.t.CostOf() == b.t.CostOf() && a.t.Tenant == b.t.Tenant && a.t.Weight == b.t.Weight
}

func (r *Redis) EnqueueMany(ctx context.Context, p Params, jobs []NewJob) ([]AdmitReply, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	cmd := r.enqueueManyCmd(ctx, p, jobs, false)
	r.evalPipelined(ctx, []*redis.Cmd{cmd})
	v, err := cmd.Result()
	if err != nil {
		return nil, fmt.Errorf("queue: enqueue %d jobs in %q: %w", len(jobs), jobs[0].Ticket.Key, err)
	}
	reps, err := parseEnqueueMany(v, len(jobs), false)
	if err != nil {
		return nil, fmt.Errorf("queue: enqueue %d jobs in %q: reply: %w", len(jobs), jobs[0].Ticket.Key, err)
	}
	return reps, nil
}

// enqueueManyCmd returns the unsent call of EnqueueMany for jobs, of one key, whose priority,
// cost, tenant and run time are the first one's; every: a job refused does not stop those
// after it.
func (r *Redis) enqueueManyCmd(ctx context.Context, p Params, jobs []NewJob, every bool) *redis.Cmd {
	t := jobs[0].Ticket
	extra := make([]any, 0, 9+4*len(jobs))
	extra = append(extra, t.Priority.Line(), p.Limit.MaxQueue, int(p.Limit.Overflow), b2i(every), len(jobs))
	for _, j := range jobs {
		extra = append(extra, j.Raw, j.Ticket.ID, j.Record, j.Ticket.Deadline)
	}
	extra = append(extra, jobs[0].RunAt, t.CostOf())
	if t.Tenant != "" {
		extra = append(extra, t.Tenant, max(1, t.Weight))
	}
	return evalSHA(ctx, lua.EnqueueMany, r.ks.withJobsArgs(t.Key, p.Limit), args(p, extra...)...)
}

// parseEnqueueMany reads enqueue_many.lua's reply to n jobs: one reply per job when every,
// else from 1 to n replies, only the last of them a refusal when fewer than n. A job queued
// plainly comes as its earliest start and the line's length before it, on the time, remaining
// and rate that open the reply; any other as admit's reply.
func parseEnqueueMany(v any, n int, every bool) ([]AdmitReply, error) {
	s, err := replySlice(v, 3)
	if err != nil {
		return nil, err
	}
	var head [3]int64
	for i := range head {
		if head[i], err = replyInt(s[i]); err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	s = s[3:]
	tried := len(s) / 2
	if len(s)%2 != 0 || tried == 0 || tried > n || (every && tried != n) {
		return nil, fmt.Errorf("%d elements for %d jobs", len(s), n)
	}
	reps := make([]AdmitReply, tried)
	for i := range reps {
		if full, ok := s[2*i].([]any); ok {
			if reps[i], err = parseAdmit(full); err != nil {
				return nil, fmt.Errorf("job %d: %w", i, err)
			}
		} else {
			earliest, err1 := replyInt(s[2*i])
			before, err2 := replyInt(s[2*i+1])
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("job %d: %w", i, err)
			}
			reps[i] = AdmitReply{Outcome: Queued, Now: head[0], Remaining: int(head[1]), Earliest: earliest,
				LineBefore: int(before), Which: int(head[2])}
		}
		if !every && refused(reps[i]) && i < tried-1 {
			return nil, fmt.Errorf("job %d refused, and the jobs after it tried", i)
		}
	}
	if tried < n && !refused(reps[tried-1]) {
		return nil, fmt.Errorf("%d of %d jobs tried, none refused", tried, n)
	}
	return reps, nil
}

// FinishJob sends the ends of concurrent runs together (r.finishes): each key's as one
// JobDoneMany call, a lone one as JobDone, all in one round trip. A caller who stops waiting at
// its deadline (ErrNoAnswer) may have had its run ended, as when any reply is lost.
func (r *Redis) FinishJob(ctx context.Context, key string, p Params, e RunEnd) (Finish, bool, error) {
	rep, err := r.finishes.do(ctx, finishArgs{k: key, p: p, e: e})
	if err != nil {
		return 0, false, fmt.Errorf("queue: finish job of %q: %w", key, err)
	}
	return rep.f, rep.woken, nil
}

// finishArgs is what the end of a run sends; finishReply, its answer.
type finishArgs struct {
	k string
	p Params
	e RunEnd
}

type finishReply struct {
	f     Finish
	woken bool
}

func (a finishArgs) key() string { return a.k }

// finishCall is the end of a run in its batcher.
type finishCall = batchCall[finishArgs, finishReply]

// finishOne sends the end of one run on its own.
func (r *Redis) finishOne(ctx context.Context, a finishArgs) (finishReply, error) {
	cmd := r.finishCmd(ctx, a.k, a.p, a.e)
	r.evalPipelined(ctx, []*redis.Cmd{cmd})
	v, err := cmd.Result()
	if err != nil {
		return finishReply{}, err
	}
	return parseFinish(v)
}

// finishCmd returns the unsent call that ends the runs ends of key (with p): JobDone for one,
// JobDoneMany for several.
func (r *Redis) finishCmd(ctx context.Context, key string, p Params, ends ...RunEnd) *redis.Cmd {
	s, extra := lua.JobDone, make([]any, 0, 1+5*len(ends))
	if len(ends) > 1 {
		s, extra = lua.JobDoneMany, append(extra, len(ends))
	}
	for _, e := range ends {
		extra = append(extra, e.ID, e.Run, int(e.Outcome), e.Data, e.Backoff.Microseconds())
	}
	return evalSHA(ctx, s, r.ks.withJobsArgs(key, p.Limit), args(p, extra...)...)
}

// finishAll sends the ends of the runs of batch in one round trip, each key's as one
// JobDoneMany call (a lone one as JobDone), and gives each call its answer.
func (r *Redis) finishAll(ctx context.Context, batch []*finishCall) {
	sendGroups(ctx, r, groupCalls(batch, func(a, b finishArgs) bool { return a.p == b.p }), func(g []*finishCall) *redis.Cmd {
		ends := make([]RunEnd, len(g))
		for j, c := range g {
			ends[j] = c.a.e
		}
		return r.finishCmd(ctx, g[0].a.k, g[0].a.p, ends...)
	}, func(g []*finishCall, v any) ([]finishReply, error) {
		if len(g) == 1 {
			rep, err := parseFinish(v)
			return []finishReply{rep}, err
		}
		s, err := replySlice(v, len(g))
		if err != nil {
			return nil, fmt.Errorf("reply: %w", err)
		}
		reps := make([]finishReply, len(g))
		for j := range g {
			if reps[j], err = parseFinish(s[j]); err != nil {
				return nil, fmt.Errorf("run %d of %d: %w", j, len(g), err)
			}
		}
		return reps, nil
	})
}

// parseFinish reads job_done.lua's reply.
func parseFinish(v any) (finishReply, error) {
	s, err := replySlice(v, 2)
	var n []int64
	if err == nil {
		n, err = replyInts(s)
	}
	if err == nil && (n[0] < int64(FinishStale) || n[0] > int64(FinishCancelled)) {
		err = fmt.Errorf("unknown code %d", n[0])
	}
	if err != nil {
		return finishReply{}, fmt.Errorf("reply: %w", err)
	}
	return finishReply{f: Finish(n[0]), woken: n[1] == 1}, nil
}

func (r *Redis) RenewLease(ctx context.Context, key string, p Params, id []byte, run int, lease time.Duration) (Renewal, error) {
	v, err := r.runJobs(ctx, lua.JobRenew, key, p, id, run, lease.Microseconds())
	if err != nil {
		return RenewLost, fmt.Errorf("queue: renew lease in %q: %w", key, err)
	}
	n, err := replyInt(v)
	if err == nil && (n < int64(RenewLost) || n > int64(RenewCancelled)) {
		err = fmt.Errorf("unknown code %d", n)
	}
	if err != nil {
		return RenewLost, fmt.Errorf("queue: renew lease in %q: reply: %w", key, err)
	}
	return Renewal(n), nil
}

func (r *Redis) CancelJob(ctx context.Context, key string, p Params, id []byte) (JobCancel, bool, error) {
	v, err := r.runJobs(ctx, lua.JobCancel, key, p, id)
	if err != nil {
		return CancelNoJob, false, fmt.Errorf("queue: cancel job in %q: %w", key, err)
	}
	s, err := replySlice(v, 2)
	var n []int64
	if err == nil {
		n, err = replyInts(s)
	}
	if err == nil && (n[0] < int64(CancelNoJob) || n[0] > int64(CancelRunning)) {
		err = fmt.Errorf("unknown code %d", n[0])
	}
	if err != nil {
		return CancelNoJob, false, fmt.Errorf("queue: cancel job in %q: reply: %w", key, err)
	}
	return JobCancel(n[0]), n[1] == 1, nil
}

func (r *Redis) Result(ctx context.Context, key string, id []byte) (JobResult, error) {
	v, err := r.runJobs(ctx, lua.JobWait, key, anyParams, id)
	if err != nil {
		return JobResult{}, fmt.Errorf("queue: job result in %q: %w", key, err)
	}
	s, err := replySlice(v, 0)
	if err != nil || len(s) == 0 {
		return JobResult{}, fmt.Errorf("queue: job result in %q: reply %v", key, v)
	}
	st, err := replyInt(s[0])
	switch {
	case err != nil:
	case st == 0:
		return JobResult{State: JobUnknown}, nil
	case st == 1:
		return JobResult{State: JobPending}, nil
	case len(s) == 2:
		var b []byte
		if b, err = replyBytes(s[1]); err == nil {
			return decodeResult(b)
		}
	}
	return JobResult{}, fmt.Errorf("queue: job result in %q: reply %v: %v", key, v, err)
}

func (r *Redis) Handlers(ctx context.Context, names []string, ttl time.Duration) ([]string, error) {
	a := make([]any, 0, 1+len(names))
	a = append(a, ttl.Microseconds())
	for _, n := range names {
		a = append(a, n)
	}
	live, err := r.eval(ctx, lua.Handlers, []any{r.ks.handlers()}, a...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("queue: handlers: %w", err)
	}
	return live, nil
}

func (r *Redis) DeadLetters(ctx context.Context, key string, n int) ([][]byte, error) {
	dlq := r.ks.plain(key)[kDLQ]
	vs, err := r.rdb.LRange(ctx, dlq, int64(-n), -1).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: dead letters of %q: %w", key, err)
	}
	out := make([][]byte, len(vs))
	for i, v := range vs {
		out[i] = []byte(v)
	}
	return out, nil
}

func (r *Redis) Scheduled(ctx context.Context, key string, n int) ([]ScheduledJob, error) {
	names := r.ks.withJobs(key, anyParams.Limit)
	zs, err := r.rdb.ZRangeWithScores(ctx, names[kSched], 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: scheduled jobs of %q: %w", key, err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		id, ok := z.Member.(string)
		if !ok {
			return nil, fmt.Errorf("queue: scheduled jobs of %q: member %T", key, z.Member)
		}
		ids[i] = id
	}
	recs, err := r.rdb.HMGet(ctx, names[kJobs], ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: scheduled jobs of %q: %w", key, err)
	}
	out := make([]ScheduledJob, len(zs))
	for i, z := range zs {
		out[i] = ScheduledJob{ID: []byte(ids[i]), RunAt: int64(z.Score)}
		if s, ok := recs[i].(string); ok {
			out[i].Job, _ = decodeJob([]byte(s)) // nil when unreadable: the grant step dead-letters it
		}
	}
	return out, nil
}
