package processor

import (
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
