package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// Job is what Enqueue needs to know about one durable job.
type Job struct {
	Key, Handler string
	Payload      []byte
	Priority     config.Priority
	Timeout      time.Duration
	MaxRetries   int
	// Name, when set, makes the job's id a function of Key and Name: an Enqueue of a job
	// whose id is waiting, running or has its result kept queues nothing.
	Name string
	// Cost is what each run counts against the rates that count units; 0 means 1.
	Cost int64
	// Tenant is whose share of the key's line the job waits in; empty for none.
	Tenant string
	// TraceParent and TraceState are the W3C trace context of the enqueue, kept in the job's
	// record for the spans of its runs (JobStart); empty when it was not traced.
	TraceParent, TraceState string
	// RunAt, when later than now, is when the job joins its line (a scheduled job).
	RunAt time.Time
}

// jobNamespace derives the ids of named jobs.
var jobNamespace = uuid.MustParse("5d3b7f0e-8c1a-4f2e-9b6d-2a7c4e1f0b93")

// MaxEnqueueBatch bounds how many jobs one round trip of EnqueueMany carries; a longer batch
// takes several.
const MaxEnqueueBatch = 500

// Enqueue puts a durable job in its key's line and returns its id. It fails with
// ErrQueueFull, ErrWouldExceedDeadline, ErrPayloadTooLarge or ErrUnavailable.
func (n *Node) Enqueue(ctx context.Context, req Job) (string, error) {
	if err := n.enqueuable(req.Handler, req.Payload); err != nil {
		return "", err
	}
	start := time.Now()
	p := n.Params(req.Key)
	nj, err := n.newJob(req, req.Payload, start, p.Limit)
	if err != nil {
		return "", err
	}
	rep, err := n.be.Enqueue(ctx, p, nj.Ticket, nj.Raw, nj.Record, nj.RunAt)
	if err != nil {
		return "", queue.Failure(ctx, fmt.Sprintf("processor: enqueue %q", req.Key), err)
	}
	if rep.Outcome == queue.Scheduled {
		// The key's grant steps move the job to its line when its time comes: the index keeps
		// the key until then, and every node looks at it now to learn when.
		n.observe(rep.Now)
		wait := nj.Ticket.Deadline - nj.Ticket.Enqueued
		n.activate(ctx, req.Key, rep.Now, rep.Earliest+wait, time.Now().Add(backendTimeout))
		return JobID(req.Key, nj.Ticket.ID), nil
	}
	if err := n.enqueued(ctx, req.Key, rep, nj.Ticket.Deadline); err != nil {
		return "", err
	}
	n.lookAtJobs(req.Key, req.Handler)
	return JobID(req.Key, nj.Ticket.ID), nil
}

// EnqueueMany puts durable jobs of one handler, one for each payload, in the line of req.Key
// (req.Payload and req.Name unused), in order, MaxEnqueueBatch jobs per round trip, each as
// Enqueue would. It returns the ids of the jobs queued: all of them, or with an error, those
// queued before the first refused or before the round trip that failed.
func (n *Node) EnqueueMany(ctx context.Context, req Job, payloads [][]byte) ([]string, error) {
	if req.Name != "" {
		return nil, fmt.Errorf("%w: a job name names one job, not a batch", config.ErrInvalidConfig)
	}
	if err := n.enqueuable(req.Handler, payloads...); err != nil {
		return nil, err
	}
	start := time.Now()
	p := n.Params(req.Key)
	ids := make([]string, 0, len(payloads))
	defer func() {
		if len(ids) > 0 {
			n.lookAtJobs(req.Key, req.Handler)
		}
	}()
	for len(payloads) > 0 {
		batch := payloads[:min(len(payloads), MaxEnqueueBatch)]
		payloads = payloads[len(batch):]
		jobs := make([]queue.NewJob, len(batch))
		for i, pl := range batch {
			var err error
			if jobs[i], err = n.newJob(req, pl, start, p.Limit); err != nil {
				return ids, err
			}
		}
		reps, err := n.be.EnqueueMany(ctx, p, jobs)
		if err != nil {
			return ids, queue.Failure(ctx, fmt.Sprintf("processor: enqueue %d jobs in %q", len(jobs), req.Key), err)
		}
		for i, rep := range reps {
			if rep.Outcome == queue.Scheduled {
				if i == 0 { // one run time for the batch: the index keeps the key until then
					n.observe(rep.Now)
					wait := jobs[i].Ticket.Deadline - jobs[i].Ticket.Enqueued
					n.activate(ctx, req.Key, rep.Now, rep.Earliest+wait, time.Now().Add(backendTimeout))
				}
			} else if err := n.enqueued(ctx, req.Key, rep, jobs[i].Ticket.Deadline); err != nil {
				return ids, err
			}
			ids = append(ids, JobID(req.Key, jobs[i].Ticket.ID))
		}
	}
	return ids, nil
}

// enqueuable checks what Enqueue and EnqueueMany check before sending anything.
func (n *Node) enqueuable(handler string, payloads ...[]byte) error {
	for _, pl := range payloads {
		if len(pl) > n.cfg.MaxPayload {
			return fmt.Errorf("%w: %d bytes, at most %d (Config.MaxPayload)", config.ErrPayloadTooLarge, len(pl), n.cfg.MaxPayload)
		}
	}
	if err := validHandlerName(handler); err != nil {
		return err
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return config.ErrClosed
	}
	return nil
}

// newJob makes the ticket and the record of req's job with payload, enqueued at start.
func (n *Node) newJob(req Job, payload []byte, start time.Time, l config.Limit) (queue.NewJob, error) {
	if req.Cost > 1 || req.Cost < 0 {
		if err := config.CheckCost(req.Key, l, req.Cost); err != nil {
			return queue.NewJob{}, err
		}
	}
	// The job outlives the caller: only the key's QueueTimeout and the job's own bound it.
	deadline := Deadline(context.Background(), start, l, req.Timeout)
	id := uuid.New()
	if req.Name != "" {
		id = uuid.NewSHA1(jobNamespace, []byte(req.Key+"\x00"+req.Name))
	}
	t := &queue.Ticket{ID: id[:], Key: req.Key, Priority: req.Priority, Enqueued: n.ServerTime(start),
		Deadline: n.ServerTime(deadline), Owner: n.id, Handler: req.Handler, Cost: req.Cost}
	if req.Tenant != "" {
		t.Tenant, t.Weight = req.Tenant, int64(l.TenantWeight(req.Tenant))
	}
	raw, err := t.Encode()
	if err != nil {
		return queue.NewJob{}, err
	}
	j := &queue.Job{Key: req.Key, Handler: req.Handler, Payload: payload, Priority: req.Priority,
		MaxRetries: req.MaxRetries, Wait: t.Deadline - t.Enqueued, Owner: n.id,
		ResultTTL: n.cfg.ResultTTL.Milliseconds(), Enqueued: t.Enqueued, Cost: req.Cost,
		TraceParent: req.TraceParent, TraceState: req.TraceState, Tenant: t.Tenant, Weight: t.Weight}
	var runAt int64
	if req.RunAt.After(start) {
		runAt = n.ServerTime(req.RunAt)
		j.Schedule()
	}
	rec, err := j.Encode()
	if err != nil {
		return queue.NewJob{}, err
	}
	return queue.NewJob{Ticket: t, Raw: raw, Record: rec, RunAt: runAt}, nil
}

// enqueued deals with the reply to a job's enqueue: the error of a refusal, and when the job
// opened its line, the index and the other nodes told.
func (n *Node) enqueued(ctx context.Context, key string, rep queue.AdmitReply, deadline int64) error {
	n.observe(rep.Now)
	if rep.Outcome == queue.Duplicate {
		return nil
	}
	if err := refusal(key, rep); err != nil {
		return err
	}
	if rep.Evicted != nil {
		n.evicted(ctx, key, rep.Evicted)
	}
	if rep.LineBefore == 0 {
		// Before Enqueue returns: the job must be found even if this process ends next.
		n.activate(ctx, key, rep.Now, deadline, time.Now().Add(backendTimeout))
	}
	return nil
}

// lookAtJobs notes that key has jobs, and looks at its line at once when this node runs
// handler.
func (n *Node) lookAtJobs(key, handler string) {
	n.mu.Lock()
	n.jobs.jobKeys[key] = time.Now()
	_, mine := n.jobs.handlers[handler]
	n.mu.Unlock()
	// A job is granted only to a node that runs its handler, so only such a node gains by
	// looking at the line now. Elsewhere the grant step would walk past every job waiting for
	// a handler no live node runs (up to 1,000 per step), once per Enqueue; the nodes that do
	// run it learn of the job by the broadcast of a line that opens, or by the visits their
	// own grant steps scheduled.
	if mine {
		n.Recheck(key)
	}
}
