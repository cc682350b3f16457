package rateltd

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzRetryAfterResponse: any Retry-After header on a 429 or 503 gives a wait that is never
// negative; a number of seconds gives exactly that many seconds (or, past what a Duration
// holds, the longest one); an HTTP date gives the time until then, at least 0; anything else
// the default. Its seeds run with go test.
func FuzzRetryAfterResponse(f *testing.F) {
	for _, h := range []string{"", "0", "1", "120", "007", "-1", "+5", " 5", "5 ", "1.5", "1e3", "0x10", "1_000",
		"9223372036", "9223372037", "18446744073709551615", "99999999999999999999999",
		"Wed, 21 Oct 2015 07:28:00 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
		time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), "soon", "\x00", "٣"} {
		f.Add(h, 429)
	}
	f.Add("30", 503)
	f.Add("30", 200)
	f.Fuzz(func(t *testing.T, h string, status int) {
		resp := &http.Response{StatusCode: status, Status: strconv.Itoa(status), Header: http.Header{"Retry-After": {h}}}
		before := time.Now()
		err := RetryAfterResponse(resp)
		if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
			if err != nil {
				t.Fatalf("status %d: %v, want nil", status, err)
			}
			return
		}
		var ra *RetryAfterError
		if !errors.As(err, &ra) {
			t.Fatalf("status %d, Retry-After %q: %v, want a *RetryAfterError", status, h, err)
		}
		if ra.After < 0 {
			t.Fatalf("Retry-After %q: a negative wait %v", h, ra.After)
		}
		if s, err := strconv.ParseUint(h, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) && strings.Trim(h, "0123456789") == "" && h != "" {
			want := time.Duration(1<<63 - 1)
			if err == nil && s <= uint64(want/time.Second) {
				want = time.Duration(s) * time.Second
			}
			if ra.After != want {
				t.Fatalf("Retry-After %q seconds: %v, want %v", h, ra.After, want)
			}
			return
		}
		if at, err := http.ParseTime(h); err == nil {
			if want := at.Sub(before); ra.After > max(want, 0) {
				t.Fatalf("Retry-After %q: %v, more than the %v until then", h, ra.After, want)
			}
			return
		}
		if ra.After != defaultRetryAfter {
			t.Fatalf("Retry-After %q, neither seconds nor a date: %v, want the default %v", h, ra.After, defaultRetryAfter)
		}
	})
}
