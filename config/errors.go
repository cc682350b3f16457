package config

import (
	"context"
	"errors"
	"fmt"
)

// The sentinel errors of rateltd. The root package re-exports each of them under the same name;
// compare with errors.Is, never with the text.
var (
	// ErrQueueFull: the key's line is full and its overflow policy is Reject, or the key never
	// queues (MaxQueue -1) and the limit is reached.
	ErrQueueFull = errors.New("rateltd: queue full")
	// ErrEvicted: the request was waiting and was dropped to make room (Overflow DropOldest),
	// or its line was cleared by Reset.
	ErrEvicted = errors.New("rateltd: evicted from queue")
	// ErrTimeout: the request's deadline passed while it waited. Errors carrying it also
	// satisfy errors.Is(err, context.DeadlineExceeded).
	ErrTimeout = errors.New("rateltd: timed out waiting in queue")
	// ErrWouldExceedDeadline: the earliest start the line allows is already past the request's
	// deadline, so it fails at once instead of waiting.
	ErrWouldExceedDeadline = errors.New("rateltd: would exceed deadline")
	// ErrClosed: the Client is closed or closing.
	ErrClosed = errors.New("rateltd: client closed")
	// ErrUnavailable: the backend (Redis) could not be reached.
	ErrUnavailable = errors.New("rateltd: backend unavailable")
	// ErrInvalidKey: the key is empty, too long, not UTF-8, or holds '{', '}' or a control character.
	ErrInvalidKey = errors.New("rateltd: invalid key")
	// ErrInvalidConfig: a Config or Limit field is out of range; the error names the field.
	ErrInvalidConfig = errors.New("rateltd: invalid config")
	// ErrPayloadTooLarge: a durable job's payload (or its handler's result) is larger than
	// Config.MaxPayload.
	ErrPayloadTooLarge = errors.New("rateltd: payload too large")
	// ErrJobNotFound: Wait was given an id of no job, or of one whose result has outlived
	// Config.ResultTTL.
	ErrJobNotFound = errors.New("rateltd: job not found")
	// ErrJobFailed: a durable job's handler failed on its last allowed attempt; the job went
	// to its key's dead-letter list.
	ErrJobFailed = errors.New("rateltd: job failed")
	// ErrCancelled: a durable job was cancelled (CancelJob): Wait's error, and the cause of
	// the ctx of a handler whose job was cancelled while it ran.
	ErrCancelled = errors.New("rateltd: job cancelled")
	// ErrCostTooHigh: a request's cost is more than some rate of its key's limit that counts
	// units could ever admit (above its Max, or its Burst for TokenBucket): it would wait
	// forever, so it fails at once.
	ErrCostTooHigh = errors.New("rateltd: cost above what the limit can ever admit")
)

// CheckCost reports ErrCostTooHigh, naming key and l's capacity, when cost is more than l
// could ever admit, and ErrInvalidConfig when cost is below 1.
func CheckCost(key string, l Limit, cost int64) error {
	if cost < 1 || cost > 1<<53 {
		return fmt.Errorf("%w: cost %d: must be from 1 to 2^53", ErrInvalidConfig, cost)
	}
	if m := l.MaxCost(); m >= 0 && cost > m {
		return fmt.Errorf("%w: key %q: cost %d, at most %d", ErrCostTooHigh, key, cost, m)
	}
	return nil
}

// TimeoutError is the error of a request, or of a wait for a durable job, whose deadline
// passed while it waited in line; Key is the key it waited on. It satisfies errors.Is with
// both ErrTimeout and context.DeadlineExceeded. The root package names it
// rateltd.TimeoutError, for errors.As.
type TimeoutError struct {
	// Key is the key whose line the request waited in.
	Key string
}

// Error says that the wait timed out, and on which key.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%v: key %q", ErrTimeout, e.Key)
}

// Is reports whether target is ErrTimeout or context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// PanicError is the error of a fn or a durable job's handler that panicked: Value is what it
// panicked with, Stack the goroutine's stack where it did. The root package names it
// rateltd.PanicError.
type PanicError struct {
	Value any
	Stack []byte
}

// Error says what the panic's value was.
func (e *PanicError) Error() string { return fmt.Sprintf("rateltd: panic: %v", e.Value) }
