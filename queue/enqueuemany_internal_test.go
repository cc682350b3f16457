package queue

import "testing"

// TestParseEnqueueManyMalformed: a reply of enqueue_many.lua that does not fit the jobs sent
// is an error, never a panic; a job queued plainly (two integers) is read with the reply's
// head.
func TestParseEnqueueManyMalformed(t *testing.T) {
	head := []any{int64(7), int64(5), int64(1)}
	reply := func(jobs ...any) []any { return append(append([]any{}, head...), jobs...) }
	queued := []any{int64(9), int64(3)} // earliest 9, 3 in line before it
	full := []any{[]any{int64(3), int64(1), int64(0), int64(0), int64(0), "", int64(0)}, int64(0)}
	dup := []any{[]any{int64(5), int64(1), int64(0), int64(0), int64(0), "", int64(0)}, int64(0)}
	cat := func(parts ...[]any) []any {
		var out []any
		for _, p := range parts {
			out = append(out, p...)
		}
		return reply(out...)
	}
	for name, c := range map[string]struct {
		v     any
		n     int
		every bool
	}{
		"not a list":            {"x", 1, false},
		"no head":               {[]any{int64(1)}, 1, false},
		"a head not integers":   {[]any{"x", int64(1), int64(1), int64(1), int64(1)}, 1, false},
		"no reply":              {reply(), 1, false},
		"an odd count":          {reply(int64(9)), 1, false},
		"more replies than n":   {cat(queued, queued), 1, false},
		"a malformed reply":     {reply([]any{int64(2)}, int64(0)), 1, false},
		"a malformed earliest":  {reply("x", int64(0)), 1, false},
		"short, none refused":   {cat(queued), 2, false},
		"refused, then queued":  {cat(full, queued), 2, false},
		"every, short":          {cat(queued, full), 3, true},
		"a length not a number": {reply(int64(9), []any{}), 1, false},
	} {
		if _, err := parseEnqueueMany(c.v, c.n, c.every); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for name, c := range map[string]struct {
		v     any
		n     int
		every bool
		tried int
	}{
		"all queued":           {cat(queued, queued), 2, false, 2},
		"stopped by refusal":   {cat(queued, full), 3, false, 2},
		"last refused":         {cat(queued, full), 2, false, 2},
		"every, refused first": {cat(full, dup, queued), 3, true, 3},
	} {
		reps, err := parseEnqueueMany(c.v, c.n, c.every)
		if err != nil || len(reps) != c.tried {
			t.Errorf("%s: %d replies, %v", name, len(reps), err)
			continue
		}
		for i, r := range reps {
			if r.Outcome == Queued && (r.Now != 7 || r.Remaining != 5 || r.Which != 1 || r.Earliest != 9 || r.LineBefore != 3) {
				t.Errorf("%s: job %d read as %+v", name, i, r)
			}
		}
	}
}
