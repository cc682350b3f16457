package rateltd

import (
	"github.com/rateltd/rateltd/config"
)

// The errors of rateltd; compare with errors.Is, never with the text. Each is the same value
// as the engine's, so that errors.Is holds whichever layer returned it.
var (
	// ErrQueueFull: the key's line is full and its Overflow is Reject, or the key never
	// queues (MaxQueue -1) and its limit is reached.
	ErrQueueFull = config.ErrQueueFull
	// ErrEvicted: the request was waiting and was dropped to make room (Overflow DropOldest),
	// or its line was cleared by Reset.
	ErrEvicted = config.ErrEvicted
	// ErrTimeout: the request's deadline passed while it waited in line. The error is a
	// *TimeoutError, which also satisfies errors.Is(err, context.DeadlineExceeded).
	ErrTimeout = config.ErrTimeout
	// ErrWouldExceedDeadline: the earliest start the line allows is already past the request's
	// deadline, so it fails at once instead of waiting.
	ErrWouldExceedDeadline = config.ErrWouldExceedDeadline
	// ErrClosed: the Client is shut down or shutting down, or was not made by New.
	ErrClosed = config.ErrClosed
	// ErrUnavailable: the backend (Redis) could not be reached, and the fail mode
	// (Config.OnRedisError) is FailClosed.
	ErrUnavailable = config.ErrUnavailable
	// ErrInvalidKey: the key is empty, longer than 512 bytes, not UTF-8, or holds '{', '}' or a
	// control character.
	ErrInvalidKey = config.ErrInvalidKey
	// ErrInvalidConfig: a Config or Limit field is out of range; the error names the field.
	ErrInvalidConfig = config.ErrInvalidConfig
	// ErrCostTooHigh: the request's cost (WithCost) is more than some rate of its key's limit
	// that counts units could ever admit — above the rate's Max, or its Burst for TokenBucket
	// — so it fails at once rather than wait forever.
	ErrCostTooHigh = config.ErrCostTooHigh
)

// TimeoutError is the error a request (or a Wait for a durable job) returns when its deadline
// passes while it waits in line; its field Key is the key it waited on. It satisfies
// errors.Is with both ErrTimeout and context.DeadlineExceeded; use errors.As with a
// *TimeoutError to learn the key. (It is defined beside the engine's errors, which return it.)
type TimeoutError = config.TimeoutError

// PanicError is the error of a fn, or of a durable job's handler, that panicked: its field
// Value is what it panicked with, Stack the goroutine's stack where it did. Request returns it
// for fn; for a handler, the job fails (and may be retried) with its text and stack as the
// failure, and a JobObserver sees it in JobEvent.Err. (It is defined beside the engine's
// errors, which return it.)
type PanicError = config.PanicError
