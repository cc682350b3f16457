package queue_test

import (
	"context"
	"slices"
	"testing"

	"github.com/rateltd/rateltd/queue"
)

// TestActiveKeysSince: a reading of the index lists the keys last activated after since, each
// with that time, and returns a time no earlier than the activations recorded before it; a key
// activated again moves to its later time.
func TestActiveKeysSince(t *testing.T) {
	eachBackend(t, func(t *testing.T, be queue.Backend) {
		ctx := context.Background()
		t0, err := be.Time(ctx)
		if err != nil {
			t.Fatal(err)
		}
		activate := func(key string, at int64) {
			t.Helper()
			if err := be.Activate(ctx, []queue.Activation{{Key: key, At: at, Until: t0 + 60e6}}); err != nil {
				t.Fatal(err)
			}
		}
		read := func(since int64, want map[string]int64) int64 {
			t.Helper()
			keys, at, now, err := be.ActiveKeysSince(ctx, since)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for i, k := range keys {
				got[k] = at[i]
			}
			if len(got) != len(want) || len(keys) != len(want) {
				t.Fatalf("since %d: %v, want %v", since, got, want)
			}
			for k, a := range want {
				if got[k] != a {
					t.Fatalf("since %d: %v, want %v", since, got, want)
				}
			}
			return now
		}
		activate("old", t0-10e6)
		activate("new", t0)
		now := read(0, map[string]int64{"old": t0 - 10e6, "new": t0})
		if now < t0 {
			t.Fatalf("read at %d, before the activation at %d it found", now, t0)
		}
		read(t0-5e6, map[string]int64{"new": t0})
		read(t0, map[string]int64{})
		activate("later", now+1)
		activate("old", now+2)
		read(now, map[string]int64{"later": now + 1, "old": now + 2})
		keys, err := be.ActiveKeys(ctx)
		if slices.Sort(keys); err != nil || !slices.Equal(keys, []string{"later", "new", "old"}) {
			t.Fatalf("ActiveKeys: %v, %v", keys, err)
		}
	})
}
