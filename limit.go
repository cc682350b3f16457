package rateltd

import (
	"time"

	"github.com/rateltd/rateltd/config"
)

// Limit is the rate limit of a key and the settings of its line. The zero value is invalid:
// Max and Window are required. A Limit is a plain value, safe to copy.
type Limit struct {
	// Algorithm is how the window is kept. Defaults to SlidingWindow.
	Algorithm Algorithm
	// Max is how many executions may start per Window. Required, at least 1.
	Max int
	// Window is the length of the window, at least 1ms and at most 7 days. Required.
	Window time.Duration
	// Burst is, for TokenBucket only, how many executions may start at once after a quiet
	// period. Defaults to Max. Must be 0 for the other algorithms.
	Burst int
	// MaxQueue is how many requests may wait in the key's line, across all priorities.
	// -1 means never queue: over the limit a request fails at once with ErrQueueFull.
	// Defaults to 1000.
	MaxQueue int
	// QueueTimeout is the longest a request waits in line; a shorter ctx deadline or
	// WithTimeout wins. Defaults to 30s.
	QueueTimeout time.Duration
	// Overflow is what a full line does with a newcomer. Defaults to Reject.
	Overflow Overflow
}

// WithDefaults returns l with every zero field that has a default filled in: MaxQueue 1000,
// QueueTimeout 30s, and for TokenBucket a Burst of Max.
func (l Limit) WithDefaults() Limit { return Limit(l.engine().WithDefaults()) }

// Validate reports the first field of l that is out of range, naming it (Limit.Max, say). The
// error satisfies errors.Is(err, ErrInvalidConfig).
func (l Limit) Validate() error { return l.validate("Limit") }

func (l Limit) validate(field string) error { return l.engine().Validate(field) }

// engine is l as the engine takes it.
func (l Limit) engine() config.Limit { return config.Limit(l) }
