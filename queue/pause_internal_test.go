package queue

import (
	"context"
	"testing"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
)

// TestStoredPauseReadings: a key's paused string in Redis reads as a pause with no end when it
// holds PausedForever, 0 (how versions before wrote one) or text that is no number (the safe
// reading of an operator's pause; Resume deletes it).
func TestStoredPauseReadings(t *testing.T) {
	srv := redistest.Server(t)
	rdb := srv.Client(t)
	r := NewRedis(rdb, srv.Prefix(t), 4)
	ctx := context.Background()
	if err := r.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	p := Params{Limit: config.Limit{Max: 10, Window: time.Minute}.WithDefaults(), StatsTTL: time.Minute}
	for _, v := range []string{"-1", "0", "soon"} {
		key := "k" + v
		if err := rdb.Set(ctx, r.ks.plain(key)[kPaused], v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if d, err := r.Check(ctx, key, p, 1); err != nil || d.Allowed || d.RetryAfter != -1 {
			t.Errorf("paused string %q: Check %+v, %v; want paused with no end", v, d, err)
		}
		if st, err := r.State(ctx, key, p); err != nil || st.PausedUntil != PausedForever {
			t.Errorf("paused string %q: State's pause %d, %v; want PausedForever", v, st.PausedUntil, err)
		}
		if err := r.ResumeKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		if d, err := r.Check(ctx, key, p, 1); err != nil || !d.Allowed {
			t.Errorf("paused string %q, resumed: Check %+v, %v; want allowed", v, d, err)
		}
	}
}
