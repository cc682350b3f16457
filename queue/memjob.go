package queue

import (
	"container/heap"
	"context"
	"slices"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The in-process counterparts of jobs.lua and the job scripts.

// jobKeep is how long job state outlives what it was last kept for (jobs.lua's margin).
const jobKeep = 60_000_000

// memResult is a durable job's result and when it lapses.
type memResult struct {
	status ResultStatus
	data   []byte
	exp    int64
}

// resultExp orders results by when they lapse (a min-heap), so that lapsed ones are found
// without a scan, as results expiry ZSET does in Redis.
type resultExp []resultAt

type resultAt struct {
	exp int64
	id  string
}

func (h resultExp) Len() int           { return len(h) }
func (h resultExp) Less(i, j int) bool { return h[i].exp < h[j].exp }
func (h resultExp) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *resultExp) Push(x any)        { *h = append(*h, x.(resultAt)) }
func (h *resultExp) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// expireResults drops the results whose time is up.
func (k *memKey) expireResults(now int64) {
	for len(k.resultExp) > 0 && k.resultExp[0].exp <= now {
		r := heap.Pop(&k.resultExp).(resultAt)
		if cur, ok := k.results[r.id]; ok && cur.exp == r.exp {
			delete(k.results, r.id)
		}
	}
}

// grantStep is GrantArgs as a grant step reads them.
type grantStep struct {
	GrantArgs
	node         string
	dead         map[string]bool // nil, and read as such, when no node is dead
	mine, others map[string]bool
	slots        int
}

func newGrantStep(g GrantArgs) *grantStep {
	gs := &grantStep{GrantArgs: g, node: string(g.Node), mine: map[string]bool{}, others: map[string]bool{}}
	if len(g.Dead) > 0 {
		gs.dead = make(map[string]bool, len(g.Dead))
	}
	for _, d := range g.Dead {
		gs.dead[string(d)] = true
	}
	for _, h := range g.Mine {
		gs.mine[h] = true
	}
	for _, h := range g.Others {
		gs.others[h] = true
	}
	return gs
}

// keepJobs keeps the key's job state until at least until (µs) plus the margin.
func (k *memKey) keepJobs(until int64) { k.jobsExp = max(k.jobsExp, until+jobKeep) }

// endJob is jobs.lua's job_end.
func (k *memKey) endJob(s step, id []byte, j *Job, status ResultStatus, data []byte) bool {
	k.expireResults(s.now)
	exp := s.now + j.ResultTTL*1000
	k.results[string(id)] = memResult{status: status, data: data, exp: exp}
	heap.Push(&k.resultExp, resultAt{exp: exp, id: string(id)})
	delete(k.jobs, string(id))
	delete(k.lease, string(id))
	delete(k.sched, string(id))
	w := k.waited[string(id)]
	delete(k.waited, string(id))
	return w
}

// deadJob is jobs.lua's job_dead.
func (k *memKey) deadJob(s step, id []byte, j *Job, msg string) bool {
	raw, _ := msgpack.Marshal([]any{"job", string(id), j.Key, j.Handler, string(j.Payload), j.Failures, j.Lost, msg, s.now})
	k.toDLQ(s, raw)
	k.count(s, CountDead, 1)
	return k.endJob(s, id, j, ResultFailed, []byte(msg))
}

// requeueJob is jobs.lua's job_requeue: back at the head of the line, or at its tail when tail.
func (k *memKey) requeueJob(s step, id []byte, j *Job, tail bool) {
	t := &Ticket{ID: id, Key: j.Key, Priority: j.Priority, Enqueued: s.now, Deadline: s.now + j.Wait, Owner: j.Owner, Handler: j.Handler,
		Cost: j.Cost}
	raw, err := t.Encode()
	if err != nil {
		return
	}
	q := j.Priority.Line()
	k.linePush(q, memTicket{raw: raw, t: t}, j.Tenant, j.Weight, !tail, k.fairPlace(q, j.Tenant, !tail), t.Deadline)
	j.State, j.Holder = jobInLine, nil
	k.keepJobs(s.now + j.Wait)
}

// enqueue is enqueue.lua.
func (k *memKey) enqueue(s step, t *Ticket, raw []byte, j *Job, runAt int64) AdmitReply {
	if r, ok := k.results[string(t.ID)]; k.jobs[string(t.ID)] != nil || (ok && r.exp > s.now) {
		return AdmitReply{Outcome: Duplicate, Now: s.now}
	}
	if runAt > s.now {
		k.jobs[string(t.ID)] = j
		k.sched[string(t.ID)] = runAt
		k.keepJobs(runAt + t.Deadline - s.now)
		k.count(s, CountScheduled, 1)
		return AdmitReply{Outcome: Scheduled, Now: s.now, Earliest: runAt, LineBefore: k.lineLen(), Which: 1}
	}
	m := k.rates(s.p)
	rep := k.queue(s, m, t, raw, m.freeNow(s.now, true))
	if rep.Outcome == Queued {
		k.jobs[string(t.ID)] = j
		k.keepJobs(t.Deadline)
	}
	return rep
}

// finish is job_done.lua.
func (k *memKey) finish(s step, e RunEnd) (Finish, bool) {
	j := k.jobs[string(e.ID)]
	if j == nil || j.Runs != e.Run || !j.running() {
		return FinishStale, false
	}
	switch {
	case e.Outcome == RunDone:
		k.count(s, CountSucceeded, 1)
		return FinishDone, k.endJob(s, e.ID, j, ResultDone, e.Data)
	case j.State == jobCancelling:
		return FinishCancelled, k.endJob(s, e.ID, j, ResultCancelled, nil)
	case e.Outcome == RunGivenBack:
		delete(k.lease, string(e.ID))
		k.requeueJob(s, e.ID, j, false)
		return FinishRequeued, false
	}
	k.count(s, CountFailed, 1)
	j.Failures++
	if j.Failures > j.MaxRetries {
		return FinishDead, k.deadJob(s, e.ID, j, string(e.Data))
	}
	k.count(s, CountRetried, 1)
	j.State, j.Holder = jobRetrying, nil
	k.lease[string(e.ID)] = s.now + e.Backoff.Microseconds()
	k.keepJobs(s.now + e.Backoff.Microseconds() + j.Wait)
	return FinishRetry, false
}

func (m *Memory) Enqueue(_ context.Context, p Params, t *Ticket, raw []byte, job []byte, runAt int64) (AdmitReply, error) {
	j, err := decodeJob(job)
	if err != nil {
		return AdmitReply{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(t.Key, now, true)
	defer m.drop(t.Key, k, now)
	return k.enqueue(newStep(p, now), t, raw, j, runAt), nil
}

func (m *Memory) EnqueueMany(_ context.Context, p Params, jobs []NewJob) ([]AdmitReply, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	recs := make([]*Job, len(jobs))
	for i, nj := range jobs {
		j, err := decodeJob(nj.Record)
		if err != nil {
			return nil, err
		}
		recs[i] = j
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	key := jobs[0].Ticket.Key
	k := m.key(key, now, true)
	defer m.drop(key, k, now)
	s := newStep(p, now)
	reps := make([]AdmitReply, 0, len(jobs))
	for i, nj := range jobs {
		runAt := jobs[0].RunAt
		if runAt > 0 {
			runAt += int64(i) // a µs apart, so that the jobs join their line in the order given
		}
		reps = append(reps, k.enqueue(s, nj.Ticket, nj.Raw, recs[i], runAt))
		if refused(reps[i]) {
			break
		}
	}
	return reps, nil
}

func (m *Memory) FinishJob(_ context.Context, key string, p Params, e RunEnd) (Finish, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, false)
	if k == nil {
		return FinishStale, false, nil
	}
	f, w := k.finish(newStep(p, now), e)
	return f, w, nil
}

func (m *Memory) RenewLease(_ context.Context, key string, _ Params, id []byte, run int, lease time.Duration) (Renewal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, false)
	if k == nil {
		return RenewLost, nil
	}
	j := k.jobs[string(id)]
	if j == nil || j.Runs != run || !j.running() {
		return RenewLost, nil
	}
	k.lease[string(id)] = now + lease.Microseconds()
	k.keepJobs(now + lease.Microseconds())
	if j.State == jobCancelling {
		return RenewCancelled, nil
	}
	return RenewKept, nil
}

func (m *Memory) Result(_ context.Context, key string, id []byte) (JobResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, false)
	if k == nil {
		return JobResult{State: JobUnknown}, nil
	}
	if r, ok := k.results[string(id)]; ok {
		if r.exp <= now {
			return JobResult{State: JobUnknown}, nil
		}
		return JobResult{State: JobEnded, Status: r.status, Data: r.data}, nil
	}
	if k.jobs[string(id)] != nil {
		k.waited[string(id)] = true
		return JobResult{State: JobPending}, nil
	}
	return JobResult{State: JobUnknown}, nil
}

func (m *Memory) Handlers(_ context.Context, names []string, ttl time.Duration) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, n := range names {
		m.handlers[n] = max(m.handlers[n], now+ttl.Microseconds())
	}
	var live []string
	for n, until := range m.handlers {
		if until > now {
			live = append(live, n)
		} else {
			delete(m.handlers, n)
		}
	}
	return live, nil
}

func (m *Memory) DeadLetters(_ context.Context, key string, n int) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.key(key, m.now(), false)
	if k == nil {
		return nil, nil
	}
	return slices.Clone(k.dlq[max(0, len(k.dlq)-n):]), nil
}
