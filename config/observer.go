package config

import "time"

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
	Key      string
	Priority Priority
	Outcome  Outcome
	// Queued reports that the request waited in line (it was not admitted at once).
	Queued bool
	// Wait is the time from the call to fn's start, or to the outcome when fn did not run.
	Wait time.Duration
	// Run is how long fn ran; zero when it did not.
	Run time.Duration
}
