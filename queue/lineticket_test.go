package queue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// What a grant step does with a line entry.
const (
	entryCorrupt = "dead-lettered" // dropped as corrupt
	entryGranted = "granted"
	entryWaits   = "waits" // a durable job whose handler no node runs: passed over
)

// lineEntries are line entries, well and badly formed, and what a grant step does with each.
func lineEntries(t *testing.T, now int64) []struct {
	name, want string
	raw        []byte
} {
	t.Helper()
	id := uuid.New()
	ID, owner, deadline := string(id[:]), string(nodeA[:]), now+int64(time.Minute/time.Microsecond)
	// fields returns a ticket's seven fields (handler nil: a request), with some replaced.
	fields := func(repl map[int]any) []any {
		f := []any{ID, "k", 1, now, deadline, owner, nil}
		for i, v := range repl {
			f[i] = v
		}
		return f
	}
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid := enc(fields(nil)[:6])
	var deep any = 1
	for range 1900 {
		deep = []any{deep}
	}
	return []struct {
		name, want string
		raw        []byte
	}{
		{"valid", entryGranted, valid},
		{"not msgpack", entryCorrupt, []byte("\xc1 not a ticket")},
		{"empty", entryCorrupt, []byte{}},
		{"a map", entryCorrupt, enc(map[int]any{1: ID, 5: deadline, 6: owner})},
		{"a string", entryCorrupt, enc(ID)},
		{"id of 4 bytes", entryCorrupt, enc(fields(map[int]any{0: ID[:4]}))},
		{"id bin", entryCorrupt, enc(fields(map[int]any{0: []byte(ID)}))},
		{"id nil", entryCorrupt, enc(fields(map[int]any{0: nil}))},
		{"no owner", entryCorrupt, enc(fields(nil)[:5])},
		{"owner a number", entryCorrupt, enc(fields(map[int]any{5: 7}))},
		{"deadline a string", entryCorrupt, enc(fields(map[int]any{4: "soon"}))},
		{"empty handler", entryCorrupt, enc(fields(map[int]any{6: ""}))},
		{"handler a number", entryCorrupt, enc(fields(map[int]any{6: 5}))},
		{"handler false", entryCorrupt, enc(fields(map[int]any{6: false}))},
		{"bin key", entryCorrupt, enc(fields(map[int]any{1: []byte("k")}))},
		{"bin in an eighth field", entryCorrupt, enc(append(fields(nil), []byte("x")))},
		{"trailing garbage", entryCorrupt, append(valid[:len(valid):len(valid)], 0xc1)},
		{"seven fields, handler nil", entryGranted, enc(fields(nil))},
		{"enqueued < 0", entryGranted, enc(fields(map[int]any{3: -5})[:6])},
		{"key not valid", entryGranted, enc(fields(map[int]any{1: "a{b}"})[:6])},
		{"key a number", entryGranted, enc(fields(map[int]any{1: 42})[:6])},
		{"key a map", entryGranted, enc(fields(map[int]any{1: map[int]any{1: 2}})[:6])},
		{"priority 9", entryGranted, enc(fields(map[int]any{2: 9})[:6])},
		{"deadline a float", entryGranted, enc(fields(map[int]any{4: float64(deadline)})[:6])},
		{"cost not a number", entryCorrupt, enc(append(fields(nil), "x"))},
		{"cost 5", entryGranted, enc(append(fields(nil), 5))},
		{"cost 2^53", entryGranted, enc(append(fields(nil), int64(1)<<53))},
		{"cost 2^53+2", entryCorrupt, enc(append(fields(nil), int64(1)<<53+2))},
		{"cost 0", entryCorrupt, enc(append(fields(nil), 0))},
		{"cost -3", entryCorrupt, enc(append(fields(nil), -3))},
		{"cost 1.5", entryCorrupt, enc(append(fields(nil), 1.5))},
		{"cost 2.0", entryGranted, enc(append(fields(nil), 2.0))},
		{"nine fields", entryGranted, enc(append(fields(nil), 2, "x"))},
		{"trailing value", entryCorrupt, append(valid[:len(valid):len(valid)], 0x01)},
		{"key nested 1900 deep", entryGranted, enc(fields(map[int]any{1: deep})[:6])},
		{"over 2 KiB", entryCorrupt, enc(fields(map[int]any{1: strings.Repeat("k", 2100)})[:6])},
		{"job ticket", entryWaits, enc(fields(map[int]any{6: "h"}))},
		{"one value after", entryCorrupt, append(valid[:len(valid):len(valid)], 0xcd, 0x09, 0xd8)},
		{"tenant 3, round 2520", entryGranted, append(valid[:len(valid):len(valid)], 0x03, 0xcd, 0x09, 0xd8)},
		{"tenant 0, round 2^53", entryGranted, append(valid[:len(valid):len(valid)], 0x00, 0xcf, 0, 0x20, 0, 0, 0, 0, 0, 0)},
		{"round 2^53 as int64", entryCorrupt, append(append(valid[:len(valid):len(valid)], 0x00), enc(int64(1)<<53)...)},
		{"round not in its shortest form", entryCorrupt, append(valid[:len(valid):len(valid)], 0x01, 0xcd, 0x00, 0x05)},
		{"tenant not in its shortest form", entryCorrupt, append(valid[:len(valid):len(valid)], 0xcc, 0x01, 0x05)},
		{"round -1", entryCorrupt, append(valid[:len(valid):len(valid)], 0x01, 0xff)},
		{"round a float", entryCorrupt, append(append(valid[:len(valid):len(valid)], 0x01), enc(2.0)...)},
		{"tenant a string", entryCorrupt, append(append(valid[:len(valid):len(valid)], enc("x")...), 0x01)},
		{"round nil", entryCorrupt, append(valid[:len(valid):len(valid)], 0x01, 0xc0)},
		{"three values after", entryCorrupt, append(valid[:len(valid):len(valid)], 0x01, 0x02, 0x03)},
		{"tenant", entryGranted, enc(append(fields(nil), 1, "acct_42"))},
		{"tenant of 64 bytes", entryGranted, enc(append(fields(nil), 1, strings.Repeat("t", 64)))},
		{"tenant of 65 bytes", entryCorrupt, enc(append(fields(nil), 1, strings.Repeat("t", 65)))},
		{"tenant empty", entryCorrupt, enc(append(fields(nil), 1, ""))},
		{"tenant a number", entryCorrupt, enc(append(fields(nil), 1, 5))},
		{"tenant nil", entryGranted, enc(append(fields(nil), 1, nil))},
		{"weight 3", entryGranted, enc(append(fields(nil), 1, "a", 3))},
		{"weight 1000", entryGranted, enc(append(fields(nil), 1, "a", 1000))},
		{"weight 0", entryCorrupt, enc(append(fields(nil), 1, "a", 0))},
		{"weight 1001", entryCorrupt, enc(append(fields(nil), 1, "a", 1001))},
		{"weight 2.5", entryCorrupt, enc(append(fields(nil), 1, "a", 2.5))},
		{"weight a string", entryCorrupt, enc(append(fields(nil), 1, "a", "3"))},
		{"eleven fields", entryGranted, enc(append(fields(nil), 1, "a", 2, "z"))},
		{"tenant, tagged", entryGranted, append(enc(append(fields(nil), 1, "a")), 0x02, 0x07)},
	}
}

// TestCorruptTicketAlike: both backends read line entries by one rule (line.lua's decode, and
// its Go twin): an entry whose fields the grant step needs are unreadable is dead-lettered as
// corrupt, and any other is served, whatever the fields it does not read hold (the node that
// gets such a grant finds it unreadable and gives it back).
func TestCorruptTicketAlike(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		p := params(config.Limit{Max: 10, Window: time.Minute})
		now, err := be.Time(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range lineEntries(t, now) {
			key := fmt.Sprintf("k%d", i)
			// Paused, so that Admit queues the entry rather than grant it on arrival.
			if err := be.PauseKey(ctx, key, queue.PausedForever); err != nil {
				t.Fatal(err)
			}
			tk, _ := ticket(t, be, key, nodeA, config.PriorityNormal)
			admit(t, be, p, tk, e.raw, queue.Queued)
			if err := be.ResumeKey(ctx, key); err != nil {
				t.Fatal(err)
			}
			rep := grant(t, be, key, p, nodeA)
			st, err := be.State(ctx, key, p)
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("queued %d, dead letters %d, corrupt %d, granted %d", st.Queued[tk.Priority.Line()],
				st.DeadLetters, st.Counters[queue.CountCorrupt], len(rep.Local))
			want := map[string]string{
				entryCorrupt: "queued 0, dead letters 1, corrupt 1, granted 0",
				entryGranted: "queued 0, dead letters 0, corrupt 0, granted 1",
				entryWaits:   "queued 1, dead letters 0, corrupt 0, granted 0",
			}[e.want]
			if got != want {
				t.Errorf("%s (%x): %s; want %s (%s)", e.name, e.raw, got, want, e.want)
			}
		}
	})
}
