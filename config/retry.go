package config

import (
	"fmt"
	"time"
)

// RetryAfterError is what fn or a durable job's handler returns when the upstream said "not
// now, retry after After" (an HTTP 429 or 503 with Retry-After, say). The root package
// re-exports it as rateltd.RetryAfterError, where its use is documented; it lives here so that
// the processor can recognise it in a handler's error.
type RetryAfterError struct {
	// After is how long the upstream asked to wait.
	After time.Duration
	// Err is the upstream's answer, if any; Unwrap returns it.
	Err error
}

// Error says how long to wait and, when there is one, what the upstream answered.
func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("rateltd: retry after %v", e.After)
	}
	return fmt.Sprintf("rateltd: retry after %v: %v", e.After, e.Err)
}

// Unwrap returns Err.
func (e *RetryAfterError) Unwrap() error { return e.Err }
