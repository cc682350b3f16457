package queue

import (
	"context"
	"math"
	"slices"
)

// The in-process twins of scheduled and cancelled durable jobs: grant.lua's join_scheduled
// and job_cancel.lua.

// joinScheduled is grant.lua's join_scheduled: it moves the scheduled jobs whose time has
// come to the tail of their line, the maxReclaims due earliest, earliest first.
func (r *grantRun) joinScheduled() {
	k, s := r.k, r.s
	for _, e := range lowest(k.sched, s.now, maxReclaims) {
		delete(k.sched, e.member)
		if j := k.jobs[e.member]; j != nil && j.State == jobScheduled {
			k.requeueJob(s, []byte(e.member), j, true)
		}
	}
}

// cancelJob is job_cancel.lua.
func (k *memKey) cancelJob(s step, id []byte) (JobCancel, bool) {
	j := k.jobs[string(id)]
	switch {
	case j == nil:
		return CancelNoJob, false
	case j.running():
		j.State = jobCancelling
		return CancelRunning, false
	case j.State == jobInLine:
		q := j.Priority.Line()
		if i := slices.IndexFunc(k.lines[q], func(e memTicket) bool { return e.t != nil && string(e.t.ID) == string(id) }); i >= 0 {
			k.take(q, i, false)
		}
	}
	k.count(s, CountCancelled, 1)
	return CancelEnded, k.endJob(s, id, j, ResultCancelled, nil)
}

func (m *Memory) CancelJob(_ context.Context, key string, p Params, id []byte) (JobCancel, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := m.key(key, now, false)
	if k == nil {
		return CancelNoJob, false, nil
	}
	defer m.drop(key, k, now)
	c, w := k.cancelJob(newStep(p, now), id)
	return c, w, nil
}

func (m *Memory) Scheduled(_ context.Context, key string, n int) ([]ScheduledJob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.key(key, m.now(), false)
	if k == nil {
		return nil, nil
	}
	var out []ScheduledJob
	for _, e := range lowest(k.sched, math.MaxInt64, n) {
		sj := ScheduledJob{ID: []byte(e.member), RunAt: e.score}
		if j := k.jobs[e.member]; j != nil {
			c := *j
			sj.Job = &c
		}
		out = append(out, sj)
	}
	return out, nil
}
