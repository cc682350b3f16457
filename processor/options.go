package processor

import (
	"context"
	"log/slog"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// Options is what a Node needs of rateltd.Config, with every default filled in and validated:
// the root's Config says what each setting means.
type Options struct {
	// Limits holds the configured limits by key and by group; Default is the limit of the
	// other keys. Limits set at run time are read from the backend.
	Limits  map[string]config.Limit
	Default config.Limit

	BatchSize    int
	PollInterval time.Duration
	ClaimTimeout time.Duration
	StatsTTL     time.Duration
	Logger       *slog.Logger

	// Durable jobs.
	Workers      int
	LeaseTimeout time.Duration
	ResultTTL    time.Duration
	MaxPayload   int
	RetryBackoff time.Duration

	// ObserveJob, when not nil, is told how every run of a durable job on this node ended, on
	// the worker's goroutine.
	ObserveJob func(JobRun)
	// ObserveSettle, when not nil, is told of every grant of this node settled (Settlement.
	// Settle), on the goroutine that settled it.
	ObserveSettle func(SettleRun)
	// StartJob, when not nil, is called on the worker's goroutine as a run of a durable job
	// begins (a trace span, say): the handler runs with the ctx it returns, and end, which
	// must not be nil, is called once as the run ends — also when its end goes unrecorded
	// (the node sealed), as a run with End FinishStale.
	StartJob func(ctx context.Context, s JobStart) (_ context.Context, end func(JobRun))
}

// JobStart describes one run of a durable job as it begins.
type JobStart struct {
	// ID is the job's id (JobID).
	ID, Key, Handler string
	// Run is the job's run number (1 for its first); Cost what it was granted with (the job's
	// cost, at least 1).
	Run  int
	Cost int64
	// Waited is the time from the job's enqueue to this run's grant, by the server's clock.
	Waited time.Duration
	// TraceParent and TraceState are the W3C trace context the job was enqueued with (Job's).
	TraceParent, TraceState string
	// Tenant is the job's tenant within its key (Job's); empty for none.
	Tenant string
}

// SettleRun describes one grant settled: its key, the cost it was granted with and the cost
// it was settled at.
type SettleRun struct {
	Key          string
	Cost, Actual int64
}

// JobRun describes one run of a durable job that ended.
type JobRun struct {
	Key, Handler string
	// End is what the run's end did; FinishStale when another run owns the job now.
	End queue.Finish
	// Run is the job's run number (1 for its first); Duration how long the handler ran.
	Run      int
	Duration time.Duration
	// Cost is what the run was granted with (the job's cost, at least 1).
	Cost int64
	// Err is the handler's error; nil when it returned none.
	Err error
}

// limit resolves key's limit, with defaults filled in: Limits[key], then runtime[key] (limits
// set at run time), then Limits[group], then Default.
func (o *Options) limit(key string, runtime map[string]config.Limit) config.Limit {
	if l, ok := o.Limits[key]; ok {
		return l.WithDefaults()
	}
	if l, ok := runtime[key]; ok {
		return l.WithDefaults()
	}
	if l, ok := o.Limits[config.Group(key)]; ok {
		return l.WithDefaults()
	}
	return o.Default.WithDefaults()
}
