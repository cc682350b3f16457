package queue

import "testing"

// TestParseEnqueueManyMalformed: a reply of enqueue_many.lua that does not fit the jobs sent
// is an error, never a panic.
func TestParseEnqueueManyMalformed(t *testing.T) {
	queued := []any{int64(2), int64(1), int64(0), int64(0), int64(0), "", int64(0)}
	full := []any{int64(3), int64(1), int64(0), int64(0), int64(0), "", int64(0)}
	for name, c := range map[string]struct {
		v any
		n int
	}{
		"not a list":           {"x", 1},
		"no reply":             {[]any{}, 1},
		"more replies than n":  {[]any{queued, queued}, 1},
		"a malformed reply":    {[]any{[]any{int64(2)}}, 1},
		"short, none refused":  {[]any{queued}, 2},
		"refused, then queued": {[]any{full, queued}, 2},
	} {
		if _, err := parseEnqueueMany(c.v, c.n, false); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for name, c := range map[string]struct {
		v any
		n int
	}{
		"all queued":         {[]any{queued, queued}, 2},
		"stopped by refusal": {[]any{queued, full}, 3},
		"last refused":       {[]any{queued, full}, 2},
	} {
		if reps, err := parseEnqueueMany(c.v, c.n, false); err != nil || len(reps) != len(c.v.([]any)) {
			t.Errorf("%s: %d replies, %v", name, len(reps), err)
		}
	}
}
