package rateltd

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rateltd/rateltd/config"
)

// RetryAfterError is what fn returns when the upstream said "not now, retry after After" (an
// HTTP 429 or 503 with Retry-After, say). Request then pauses the key on every node until
// then and, within the request's deadline and its WithMaxRetries budget, puts the request back
// at the head of its line; otherwise the error is returned to the caller. A durable job's
// handler that returns it pauses the key likewise and runs again after After. Make one with
// RetryAfter or RetryAfterResponse.
//
// Its fields are After (how long the upstream asked to wait) and Err (the upstream's answer,
// if any; Unwrap returns it). It is the same type as [config.RetryAfterError], so that the
// processor recognises it in a handler's error.
type RetryAfterError = config.RetryAfterError

// RetryAfter returns the error by which fn tells Request that the upstream asked to wait d.
func RetryAfter(d time.Duration, err error) error { return &RetryAfterError{After: d, Err: err} }

// defaultRetryAfter is the wait assumed when a 429 or 503 carries no usable Retry-After.
const defaultRetryAfter = time.Second

// RetryAfterResponse turns an upstream's answer into a *RetryAfterError when it is 429 Too
// Many Requests or 503 Service Unavailable, taking the wait from its Retry-After header
// (seconds or an HTTP date; 1s when absent or unreadable; never negative, see parseRetryAfter).
// For any other answer it returns nil.
func RetryAfterResponse(resp *http.Response) error {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return nil
	}
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"))
	if !ok {
		d = defaultRetryAfter
	}
	return RetryAfter(d, fmt.Errorf("upstream answered %s", resp.Status))
}

// maxDuration is the longest time.Duration.
const maxDuration = time.Duration(math.MaxInt64)

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): delay-seconds, digits only,
// or an HTTP date. The wait is never negative: a date in the past is 0, and a number of
// seconds past what a Duration holds is the longest Duration (multiplied, it would wrap
// around to a negative wait, that is no wait at all).
func parseRetryAfter(h string) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if strings.Trim(h, "0123456789") == "" {
		// Digits only: ParseUint fails only past 64 bits (it reports ErrRange before it
		// looks at what follows the digits, so this is checked first).
		if s, err := strconv.ParseUint(h, 10, 64); err == nil && s <= uint64(maxDuration/time.Second) {
			return time.Duration(s) * time.Second, true
		}
		return maxDuration, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, time.Until(t)), true
	}
	return 0, false
}

// asRetryAfter reports fn's RetryAfterError, if that is what it returned.
func asRetryAfter(err error) (*RetryAfterError, bool) {
	if err == nil {
		return nil, false // and no allocation for errors.As's target
	}
	var ra *RetryAfterError
	ok := errors.As(err, &ra)
	return ra, ok
}
