package rateltd

import (
	"fmt"

	"github.com/rateltd/rateltd/config"
)

// The errors of rateltd; compare with errors.Is. See [config.ErrQueueFull] and its siblings
// for when each occurs.
var (
	ErrQueueFull           = config.ErrQueueFull
	ErrEvicted             = config.ErrEvicted
	ErrTimeout             = config.ErrTimeout
	ErrWouldExceedDeadline = config.ErrWouldExceedDeadline
	ErrClosed              = config.ErrClosed
	ErrUnavailable         = config.ErrUnavailable
	ErrInvalidKey          = config.ErrInvalidKey
	ErrInvalidConfig       = config.ErrInvalidConfig
)

// TimeoutError is the error a request (or a Wait for a durable job) returns when its deadline
// passes while it waits in line; its field Key is the key it waited on. It satisfies
// errors.Is with both ErrTimeout and context.DeadlineExceeded; use errors.As with a
// *TimeoutError to learn the key.
type TimeoutError = config.TimeoutError

// PanicError is returned when fn panics: Value is what it panicked with, Stack where.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("rateltd: fn panicked: %v", e.Value) }
