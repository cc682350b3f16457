package rateltd

import (
	"context"
	"fmt"
	"time"

	"github.com/rateltd/rateltd/processor"
)

// ScheduledJob is a durable job enqueued with WithDelay or WithRunAt whose time to join its
// line has not come.
type ScheduledJob struct {
	// ID is the job's id (for Wait and CancelJob); Handler and Payload are its own.
	ID, Handler string
	Payload     []byte
	// Priority is the line it joins; RunAt, when (this host's clock, set against Redis's).
	Priority Priority
	RunAt    time.Time
}

// ScheduledJobs returns the first n (at most 1000) of key's scheduled jobs, the earliest due
// first. A job whose record cannot be read is listed with its id and time only. It fails with
// ErrInvalidKey, ErrInvalidConfig (n out of range), ErrClosed or ErrUnavailable.
func (c *Client) ScheduledJobs(ctx context.Context, key string, n int) ([]ScheduledJob, error) {
	if err := c.usable(key); err != nil {
		return nil, err
	}
	if n < 1 || n > 1000 {
		return nil, fmt.Errorf("%w: ScheduledJobs: n must be 1 to 1000, got %d", ErrInvalidConfig, n)
	}
	sjs, err := c.be.Scheduled(ctx, key, n)
	if err != nil {
		return nil, unavailable(ctx, err)
	}
	out := make([]ScheduledJob, len(sjs))
	for i, s := range sjs {
		out[i] = ScheduledJob{ID: processor.JobID(key, s.ID), RunAt: c.node.LocalTime(s.RunAt)}
		if s.Job != nil {
			out[i].Handler, out[i].Payload, out[i].Priority = s.Job.Handler, s.Job.Payload, s.Job.Priority
		}
	}
	return out, nil
}
