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

// PanicError is returned when fn panics: Value is what it panicked with, Stack where.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("rateltd: fn panicked: %v", e.Value) }
