package rateltd

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// RetryAfterError is what fn returns when the upstream said "not now, retry after After" (an
// HTTP 429 or 503 with Retry-After, say). Request then pauses the key on every node until
// then and, within the request's deadline and its WithMaxRetries budget, puts the request back
// at the head of its line; otherwise the error is returned to the caller. Make one with
// RetryAfter or RetryAfterResponse.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("rateltd: retry after %v", e.After)
	}
	return fmt.Sprintf("rateltd: retry after %v: %v", e.After, e.Err)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the error by which fn tells Request that the upstream asked to wait d.
func RetryAfter(d time.Duration, err error) error { return &RetryAfterError{After: d, Err: err} }

// defaultRetryAfter is the wait assumed when a 429 or 503 carries no usable Retry-After.
const defaultRetryAfter = time.Second

// RetryAfterResponse turns an upstream's answer into a *RetryAfterError when it is 429 Too
// Many Requests or 503 Service Unavailable, taking the wait from its Retry-After header
// (seconds or an HTTP date; 1s when absent or unreadable). For any other answer it returns nil.
func RetryAfterResponse(resp *http.Response) error {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return nil
	}
	d := defaultRetryAfter
	if h := resp.Header.Get("Retry-After"); h != "" {
		if s, err := strconv.Atoi(h); err == nil && s >= 0 {
			d = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(h); err == nil {
			d = max(0, time.Until(t))
		}
	}
	return RetryAfter(d, fmt.Errorf("upstream answered %s", resp.Status))
}

// asRetryAfter reports fn's RetryAfterError, if that is what it returned.
func asRetryAfter(err error) (*RetryAfterError, bool) {
	var ra *RetryAfterError
	ok := errors.As(err, &ra)
	return ra, ok
}
