package rateltd

import (
	"time"

	"github.com/rateltd/rateltd/processor"
	"github.com/rateltd/rateltd/queue"
)

// Observer is told how every request made through a Client ended, on the caller's goroutine,
// as it ends. It must be quick and safe for concurrent use. Package metrics adapts it to
// Prometheus.
type Observer interface {
	ObserveRequest(RequestEvent)
}

// Outcome is how a request ended.
type Outcome int

const (
	// OutcomeSucceeded: fn ran and returned no error.
	OutcomeSucceeded Outcome = iota + 1
	// OutcomeFailed: fn ran and returned an error or panicked.
	OutcomeFailed
	// OutcomeRejected: refused on arrival, the line being full (ErrQueueFull) or too long to
	// start before the deadline (ErrWouldExceedDeadline).
	OutcomeRejected
	// OutcomeExpired: waited until its deadline (ErrTimeout).
	OutcomeExpired
	// OutcomeEvicted: dropped from the line (ErrEvicted).
	OutcomeEvicted
	// OutcomeCancelled: its ctx was cancelled while it waited.
	OutcomeCancelled
	// OutcomeClosed: its Client was closed (ErrClosed).
	OutcomeClosed
	// OutcomeUnavailable: the backend could not be reached (ErrUnavailable).
	OutcomeUnavailable
)

var outcomeNames = [...]string{"", "succeeded", "failed", "rejected", "expired", "evicted", "cancelled", "closed", "unavailable"}

func (o Outcome) String() string {
	if o > 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// RequestEvent describes one request that ended.
type RequestEvent struct {
	// Key is the request's key; Priority the priority it asked for.
	Key      string
	Priority Priority
	// Outcome is how it ended.
	Outcome Outcome
	// Queued reports that the request waited in line (it was not admitted at once).
	Queued bool
	// Wait is the time from the call to fn's start, or to the outcome when fn did not run.
	Wait time.Duration
	// Run is how long fn ran; zero when it did not.
	Run time.Duration
	// Cost is the request's cost (WithCost, or 1): what its grant counted, when fn ran,
	// against the rates of the key's limit that count cost units. A Settle in fn is told to a
	// SettleObserver.
	Cost int64
}

// JobObserver is an Observer that is also told how every run of a durable job on this Client
// ended, on the worker's goroutine. Config.Observer is checked for it.
type JobObserver interface {
	ObserveJob(JobEvent)
}

// JobOutcome is how a run of a durable job ended.
type JobOutcome int

const (
	// JobOutcomeSucceeded: the handler returned a result, now kept for Wait.
	JobOutcomeSucceeded JobOutcome = iota + 1
	// JobOutcomeRetried: the handler failed; the job runs again after its backoff.
	JobOutcomeRetried
	// JobOutcomeDead: the handler failed on the job's last allowed run; the job is
	// dead-lettered.
	JobOutcomeDead
	// JobOutcomeGivenBack: the Client shut down while the handler ran; the job went back to its
	// line.
	JobOutcomeGivenBack
	// JobOutcomeLost: the job's lease lapsed while the handler ran (this node was taken for
	// dead, or Redis could not be reached); another run owns the job now and this one's end was
	// dropped.
	JobOutcomeLost
	// JobOutcomeCancelled: the job was cancelled (CancelJob) while the handler ran, and ended
	// so.
	JobOutcomeCancelled
)

var jobOutcomeNames = [...]string{"", "succeeded", "retried", "dead", "given_back", "lost", "cancelled"}

func (o JobOutcome) String() string {
	if o > 0 && int(o) < len(jobOutcomeNames) {
		return jobOutcomeNames[o]
	}
	return "unknown"
}

// JobEvent describes one run of a durable job that ended.
type JobEvent struct {
	// Key is the job's key; Handler the name of the handler that ran it.
	Key, Handler string
	// Outcome is what the run's end did to the job.
	Outcome JobOutcome
	// Run is the job's run number (1 for its first); Duration how long the handler ran.
	Run      int
	Duration time.Duration
	// Err is the handler's error, nil when it returned none: a *PanicError when it panicked,
	// a *RetryAfterError when it asked to be run later.
	Err error
	// Cost is the job's cost (WithCost at Enqueue, or 1): what the run's grant counted against
	// the rates of the key's limit that count cost units.
	Cost int64
}

// SettleObserver is an Observer that is also told of every grant settled on this Client —
// Settle in a request's fn or a durable job's handler, or later with the fn's ctx (as the HTTP
// API's settle route does) — on the goroutine that called Settle, once the settle took effect.
// It is not told of a Settle that failed, nor of one for a request that ran in a fail mode
// (there was no grant). Config.Observer is checked for it.
type SettleObserver interface {
	ObserveSettle(SettleEvent)
}

// SettleEvent describes one grant settled.
type SettleEvent struct {
	// Key is the grant's key.
	Key string
	// Cost is what the grant was admitted with (WithCost, or 1); Actual what Settle said it
	// really cost. Each rate of the limit that counts units got Cost-Actual back when Actual is
	// less, and was charged Actual-Cost more when it is more.
	Cost, Actual int64
}

// jobOutcomes names what a run's end did to the job.
var jobOutcomes = map[queue.Finish]JobOutcome{queue.FinishStale: JobOutcomeLost, queue.FinishDone: JobOutcomeSucceeded,
	queue.FinishRetry: JobOutcomeRetried, queue.FinishDead: JobOutcomeDead, queue.FinishRequeued: JobOutcomeGivenBack,
	queue.FinishCancelled: JobOutcomeCancelled}

// jobEvent is the JobEvent of the run r.
func jobEvent(r processor.JobRun) JobEvent {
	return JobEvent{Key: r.Key, Handler: r.Handler, Outcome: jobOutcomes[r.End], Run: r.Run, Duration: r.Duration, Err: r.Err,
		Cost: r.Cost}
}
