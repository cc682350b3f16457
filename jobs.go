package rateltd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/processor"
	"github.com/rateltd/rateltd/queue"
)

// More errors of durable jobs; compare with errors.Is.
var (
	// ErrPayloadTooLarge: a durable job's payload (or its handler's result) is larger than
	// Config.MaxPayload.
	ErrPayloadTooLarge = config.ErrPayloadTooLarge
	// ErrJobNotFound: Wait was given the id of no job, or of one whose result has outlived
	// Config.ResultTTL.
	ErrJobNotFound = config.ErrJobNotFound
	// ErrJobFailed: a durable job's handler failed on its last allowed run; the job went to
	// its key's dead-letter list. The error is a *JobError.
	ErrJobFailed = config.ErrJobFailed
	// ErrCancelled: the durable job was cancelled (CancelJob); also the cause
	// (context.Cause) of the ctx of a handler whose job was cancelled while it ran.
	ErrCancelled = config.ErrCancelled
)

// Handler runs a durable job on a node that registered it with Handle: it gets the job's
// payload and returns its result, which Wait returns on any node. An error makes the job run
// again after a backoff while its retries last (WithMaxRetries); a RetryAfterError pauses the
// key for its duration first. ctx is cancelled when the Client's Shutdown gives up waiting
// for it (cause ErrClosed: return then, and the job goes back to its line without spending a
// retry) or the job's lease is lost.
type Handler func(ctx context.Context, payload []byte) ([]byte, error)

// JobError is Wait's error for a durable job that failed on its last allowed run (or whose
// lease lapsed too often); the job is in its key's dead-letter list. It satisfies
// errors.Is(err, ErrJobFailed).
type JobError struct {
	// ID is the job's id; Message the text of its last error.
	ID, Message string
}

func (e *JobError) Error() string {
	return fmt.Sprintf("%v: job %s: %s", ErrJobFailed, e.ID, e.Message)
}

func (e *JobError) Is(target error) bool { return target == ErrJobFailed }

// Handle registers h to run the durable jobs that name handler name, on this Client's
// workers (Config.Workers). Only Clients that registered a handler run its jobs. Register
// each name once, before or after enqueuing jobs for it.
func (c *Client) Handle(name string, h Handler) error {
	if c.isClosed() {
		return ErrClosed
	}
	return c.node.Handle(name, processor.Handler(h))
}

// Enqueue puts a durable job in the line of key and returns its id at once. The job waits in
// the same line as requests (same limit, priorities and deadlines: WithPriority, WithTimeout
// or the key's QueueTimeout, not ctx) until a Client that runs handler takes it; it runs at
// least once, also when the Client that runs it dies, and WithMaxRetries more times if its
// handler fails. Its state lives in Redis: Wait for its result from any Client, also after a
// restart. WithDelay or WithRunAt has it join its line later (a scheduled job: ScheduledJobs
// lists them); CancelJob ends it. It fails with ErrQueueFull, ErrWouldExceedDeadline, ErrPayloadTooLarge (payload
// over Config.MaxPayload), ErrInvalidKey, ErrInvalidConfig, ErrClosed or ErrUnavailable (Redis
// unreachable, whatever Config.OnRedisError says: a durable job cannot be kept locally). When
// the answer of a Redis that did queue the job is lost (a timeout, a cut connection), Enqueue
// fails although the job is in line: an enqueue retried after ErrUnavailable may run twice,
// unless the job is named (WithJobName), which makes Enqueue idempotent.
func (c *Client) Enqueue(ctx context.Context, key, handler string, payload []byte, opts ...Option) (string, error) {
	if err := c.usable(key); err != nil {
		return "", err
	}
	o, err := apply(opts)
	if err != nil {
		return "", err
	}
	job := processor.Job{Key: key, Handler: handler, Payload: payload, Priority: o.priority, Timeout: o.timeout,
		MaxRetries: o.retries, Name: o.jobName, Cost: o.cost, Tenant: o.tenant, RunAt: o.runAt}
	ctx, span := c.startEnqueue(ctx, &job, 1)
	id, err := c.node.Enqueue(ctx, job)
	if span != nil {
		if err == nil {
			span.SetAttributes(attrJobID.String(id))
		}
		endSpan(span, err)
	}
	return id, err
}

// EnqueueMany enqueues one durable job of handler for each payload in the line of key, in
// order, with the same options, in one round trip for up to 500 jobs (several for more): as
// many Enqueue calls would, at the cost of about one. It returns the jobs' ids in the order of
// payloads. Each job is queued or refused as Enqueue would queue or refuse it at its turn; the
// first refused (ErrQueueFull, ErrWouldExceedDeadline) stops the batch, and EnqueueMany returns
// the ids of the jobs queued before it with the error: a prefix of payloads, in line. A payload
// over Config.MaxPayload fails the call with ErrPayloadTooLarge before any job is sent;
// WithJobName, which names one job, fails it with ErrInvalidConfig. With WithDelay or
// WithRunAt every job of the batch is scheduled for the same time, and joins its line then,
// in the order of payloads. On ErrUnavailable the ids
// returned are of the jobs known queued; those of the round trip that failed may be queued
// too, as with Enqueue.
func (c *Client) EnqueueMany(ctx context.Context, key, handler string, payloads [][]byte, opts ...Option) ([]string, error) {
	if err := c.usable(key); err != nil {
		return nil, err
	}
	o, err := apply(opts)
	if err != nil {
		return nil, err
	}
	job := processor.Job{Key: key, Handler: handler, Priority: o.priority, Timeout: o.timeout, MaxRetries: o.retries,
		Name: o.jobName, Cost: o.cost, Tenant: o.tenant, RunAt: o.runAt}
	ctx, span := c.startEnqueue(ctx, &job, len(payloads))
	ids, err := c.node.EnqueueMany(ctx, job, payloads)
	if span != nil {
		span.SetAttributes(attrQueuedJobs.Int(len(ids)))
		endSpan(span, err)
	}
	return ids, err
}

// HandlerLive reports whether some live Client runs the durable-job handler name: this one,
// or another that recorded it in Redis and whose heartbeat has not lapsed. Another Client's
// Handle is seen once its processor has recorded it (its next step, moments after Handle);
// a Client that died stops counting when its heartbeat lapses (5 PollIntervals, at least 3s).
// Enqueue itself accepts any name (a job waits for its handler); a service that takes
// handler names from callers it does not trust asks this first. It fails with ErrClosed or
// ErrUnavailable.
func (c *Client) HandlerLive(ctx context.Context, name string) (bool, error) {
	if c.isClosed() {
		return false, ErrClosed
	}
	live, err := c.node.HandlerLive(ctx, name)
	if err != nil {
		return false, unavailable(ctx, err)
	}
	return live, nil
}

// Wait waits until the durable job id has ended and returns its handler's result. It fails
// with a *JobError (ErrJobFailed) when the job failed for good, an error satisfying ErrTimeout
// when the job's time in line ran out, ErrEvicted when its key was reset while it waited,
// ErrJobNotFound for an unknown id or a result older than Config.ResultTTL, or, when ctx ends
// first, ctx's error (not ErrTimeout: the job goes on, and a later Wait can have its result),
// or ErrUnavailable when Redis could not be read until ctx ended.
func (c *Client) Wait(ctx context.Context, id string) ([]byte, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	key, raw, err := processor.ParseJobID(id)
	if err != nil {
		return nil, err
	}
	r, err := c.node.Wait(ctx, key, raw)
	if err != nil {
		return nil, err
	}
	switch {
	case r.State == queue.JobUnknown:
		return nil, fmt.Errorf("%w: %s", ErrJobNotFound, id)
	case r.Status == queue.ResultDone:
		return r.Data, nil
	case r.Status == queue.ResultExpired:
		return nil, fmt.Errorf("job %s: %w", id, &TimeoutError{Key: key})
	case r.Status == queue.ResultEvicted:
		return nil, fmt.Errorf("%w: job %s: its key was reset", ErrEvicted, id)
	case r.Status == queue.ResultCancelled:
		return nil, fmt.Errorf("%w: job %s", ErrCancelled, id)
	}
	return nil, &JobError{ID: id, Message: string(r.Data)}
}

// CancelJob cancels the durable job id. A job waiting in its line, scheduled (WithDelay,
// WithRunAt) or waiting for a retry ends at once: it never runs (again), and Wait returns
// ErrCancelled. A running job is marked cancelled: the Client that runs it learns it when it
// renews the job's lease, which a wake-up message asks it to do at once (at the latest within
// a third of Config.LeaseTimeout), and cancels its handler's ctx with the cause ErrCancelled; unless the handler then returns a result, the
// job ends cancelled, with no retry. It fails with ErrJobNotFound when no such job waits or
// runs (also when it ended already), ErrClosed or ErrUnavailable.
func (c *Client) CancelJob(ctx context.Context, id string) error {
	if c.isClosed() {
		return ErrClosed
	}
	key, raw, err := processor.ParseJobID(id)
	if err != nil {
		return err
	}
	found, err := c.node.CancelJob(ctx, key, raw)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrJobNotFound, id)
	}
	return nil
}

// HandleFunc registers fn as the handler name, its payload and result msgpack-encoded: the
// typed side of Call.
func HandleFunc[In, Out any](c *Client, name string, fn func(context.Context, In) (Out, error)) error {
	return c.Handle(name, func(ctx context.Context, payload []byte) ([]byte, error) {
		var in In
		if err := msgpack.Unmarshal(payload, &in); err != nil {
			return nil, fmt.Errorf("rateltd: handler %q: decode payload: %w", name, err)
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		return msgpack.Marshal(out)
	})
}

// Call enqueues a durable job for handler with in as its msgpack-encoded payload, waits for it
// and decodes its result: Enqueue and Wait in one. When ctx ends first, the job carries on;
// the error then holds its id (see JobIDOf) for a later Wait.
func Call[In, Out any](ctx context.Context, c *Client, key, handler string, in In, opts ...Option) (Out, error) {
	var out Out
	payload, err := msgpack.Marshal(in)
	if err != nil {
		return out, fmt.Errorf("rateltd: call %q: encode payload: %w", handler, err)
	}
	id, err := c.Enqueue(ctx, key, handler, payload, opts...)
	if err != nil {
		return out, err
	}
	res, err := c.Wait(ctx, id)
	if err != nil {
		return out, &CallError{ID: id, Err: err}
	}
	if err := msgpack.Unmarshal(res, &out); err != nil {
		return out, fmt.Errorf("rateltd: call %q: decode result of job %s: %w", handler, id, err)
	}
	return out, nil
}

// CallError is Call's error once its job was enqueued: waiting for the job's result failed.
// It unwraps to Wait's error, so errors.Is(err, ErrJobFailed) and the like hold.
type CallError struct {
	// ID is the job's id, for a later Wait; Err is Wait's error.
	ID  string
	Err error
}

// Error names the job and why waiting for it failed.
func (e *CallError) Error() string { return fmt.Sprintf("job %s: %v", e.ID, e.Err) }

// Unwrap returns Err.
func (e *CallError) Unwrap() error { return e.Err }

// JobIDOf returns the id of the job a Call error is about, if it was enqueued.
func JobIDOf(err error) (string, bool) {
	var we *CallError
	if errors.As(err, &we) {
		return we.ID, true
	}
	return "", false
}

// DeadLetter is one entry of a key's dead-letter list.
type DeadLetter struct {
	// JobID is set when the entry is a durable job that failed on its last allowed run (or
	// whose lease lapsed too often): its handler, payload, failed runs, lapsed leases, last
	// error and when it was dead-lettered. Otherwise the entry is a corrupt ticket, kept in Raw.
	JobID, Handler       string
	Payload              []byte
	Failures, LeasesLost int
	Error                string
	At                   time.Time
	Raw                  []byte
}

// DeadLetters returns the last n (at most 1000) entries of key's dead-letter list, oldest
// first. Status counts them; Reset clears them.
func (c *Client) DeadLetters(ctx context.Context, key string, n int) ([]DeadLetter, error) {
	if err := c.usable(key); err != nil {
		return nil, err
	}
	if n < 1 || n > 1000 {
		return nil, fmt.Errorf("%w: DeadLetters: n must be 1 to 1000, got %d", ErrInvalidConfig, n)
	}
	raws, err := c.be.DeadLetters(ctx, key, n)
	if err != nil {
		return nil, unavailable(ctx, err)
	}
	out := make([]DeadLetter, len(raws))
	for i, raw := range raws {
		d, ok := queue.DecodeDeadJob(raw)
		if !ok {
			out[i] = DeadLetter{Raw: raw}
			continue
		}
		out[i] = DeadLetter{JobID: processor.JobID(d.Key, d.ID), Handler: d.Handler, Payload: d.Payload, Failures: d.Failures,
			LeasesLost: d.Lost, Error: d.Error, At: c.node.LocalTime(d.At)}
	}
	return out, nil
}
