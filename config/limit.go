package config

import (
	"fmt"
	"time"
)

// Algorithm selects how a key's window is kept.
type Algorithm int

const (
	// SlidingWindow is an exact sliding-window log: at most Max grants in any interval of length
	// Window. It stores one entry per grant in the window (at most Max), so it suits limits up
	// to some tens of thousands per window; above that use FixedWindow or TokenBucket.
	SlidingWindow Algorithm = iota
	// FixedWindow counts grants per aligned window of length Window (aligned to Redis time).
	// Constant memory; up to 2×Max may start around a window boundary.
	FixedWindow
	// TokenBucket is GCRA: a steady rate of Max per Window with bursts of up to Burst.
	TokenBucket
)

func (a Algorithm) String() string {
	switch a {
	case SlidingWindow:
		return "sliding"
	case FixedWindow:
		return "fixed"
	case TokenBucket:
		return "token"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// ParseAlgorithm turns "sliding", "fixed" or "token" into an Algorithm.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch s {
	case "sliding", "":
		return SlidingWindow, nil
	case "fixed":
		return FixedWindow, nil
	case "token":
		return TokenBucket, nil
	}
	return 0, fmt.Errorf("%w: Algorithm %q: want sliding, fixed or token", ErrInvalidConfig, s)
}

// Overflow says what happens when a request arrives at a full line.
type Overflow int

const (
	// Reject refuses the newcomer with ErrQueueFull.
	Reject Overflow = iota
	// DropOldest evicts the oldest waiting request of the lowest priority at or below the
	// newcomer's (that request ends with ErrEvicted at once) and queues the newcomer. When every
	// waiting request has a higher priority than the newcomer, the newcomer gets ErrQueueFull.
	DropOldest
)

func (o Overflow) String() string {
	switch o {
	case Reject:
		return "reject"
	case DropOldest:
		return "drop_oldest"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// Defaults for the queue settings of a Limit.
const (
	DefaultMaxQueue     = 1000
	DefaultQueueTimeout = 30 * time.Second
	// MaxWindow bounds Limit.Window.
	MaxWindow = 7 * 24 * time.Hour
)

// Limit is a key's limit as the engine takes it: rateltd.Limit, where each field is
// documented, converts to it field for field.
type Limit struct {
	Algorithm    Algorithm
	Max          int
	Window       time.Duration
	Burst        int
	MaxQueue     int // -1: never queue
	QueueTimeout time.Duration
	Overflow     Overflow
}

// WithDefaults returns l with every zero field that has a default filled in.
func (l Limit) WithDefaults() Limit {
	if l.MaxQueue == 0 {
		l.MaxQueue = DefaultMaxQueue
	}
	if l.QueueTimeout == 0 {
		l.QueueTimeout = DefaultQueueTimeout
	}
	if l.Algorithm == TokenBucket && l.Burst == 0 {
		l.Burst = l.Max
	}
	return l
}

// Validate reports the first field of l that is out of range, naming it as field.X.
func (l Limit) Validate(field string) error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%w: %s.%s: %s", ErrInvalidConfig, field, name, fmt.Sprintf(format, args...))
	}
	switch {
	case l.Algorithm < SlidingWindow || l.Algorithm > TokenBucket:
		return bad("Algorithm", "unknown algorithm %d", int(l.Algorithm))
	case l.Max < 1:
		return bad("Max", "must be at least 1, got %d", l.Max)
	case l.Window < time.Millisecond:
		return bad("Window", "must be at least 1ms, got %v", l.Window)
	case l.Window > MaxWindow:
		return bad("Window", "must be at most %v, got %v", MaxWindow, l.Window)
	case l.Burst < 0:
		return bad("Burst", "must not be negative, got %d", l.Burst)
	case l.Burst != 0 && l.Algorithm != TokenBucket:
		return bad("Burst", "applies only to TokenBucket, got %d with %v", l.Burst, l.Algorithm)
	case l.MaxQueue < -1:
		return bad("MaxQueue", "must be -1 (never queue), 0 (default) or positive, got %d", l.MaxQueue)
	case l.QueueTimeout < 0:
		return bad("QueueTimeout", "must not be negative, got %v", l.QueueTimeout)
	case l.Overflow != Reject && l.Overflow != DropOldest:
		return bad("Overflow", "unknown overflow policy %d", int(l.Overflow))
	}
	return nil
}
