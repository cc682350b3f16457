package rateltd

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/queue"
)

// TestG7PauseKeyGroupAll: Pause stops grants for a key, for every key of a group, or for all
// keys; requests keep queueing and Status shows the pause; after Resume the lines drain.
func TestG7PauseKeyGroupAll(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cs := h.clients(2, Config{Default: Limit{Max: 100, Window: time.Second}})
		ctx := context.Background()
		runs := func(c *Client, key string) bool {
			_, err := c.Request(ctx, key, noop, WithTimeout(100*time.Millisecond))
			if err != nil && !errors.Is(err, ErrTimeout) {
				t.Fatalf("Request(%q): %v", key, err)
			}
			return err == nil
		}
		pausedEverywhere := func(key string, want bool) {
			t.Helper()
			for _, c := range cs {
				eventually(t, 3*time.Second, key+" paused state seen by every node", func() bool {
					return status(t, c, key).Paused == want
				})
			}
		}
		steps := []struct {
			pause        string
			paused, free []string
		}{
			{pause: "mail:a", paused: []string{"mail:a"}, free: []string{"mail:b", "sms:a"}},
			{pause: "mail", paused: []string{"mail:a", "mail:b", "mail"}, free: []string{"sms:a"}},
			{pause: "*", paused: []string{"mail:a", "sms:a", "other"}},
		}
		var held []<-chan Result
		for i, s := range steps {
			if err := cs[i%2].Pause(ctx, s.pause); err != nil {
				t.Fatal(err)
			}
			for _, k := range s.paused {
				pausedEverywhere(k, true)
				for _, c := range cs {
					if runs(c, k) {
						t.Fatalf("after Pause(%q) a request for %q ran", s.pause, k)
					}
				}
				held = append(held, cs[0].RequestAsync(ctx, k, noop, WithTimeout(10*time.Second)))
			}
			for _, k := range s.free {
				if !runs(cs[1], k) {
					t.Fatalf("after Pause(%q) a request for %q did not run", s.pause, k)
				}
			}
		}
		st := status(t, cs[1], "mail:a")
		if !st.Paused || !st.PausedUntil.IsZero() {
			t.Fatalf("status of a paused key: paused %v until %v", st.Paused, st.PausedUntil)
		}
		for _, name := range []string{"*", "mail", "mail:a"} {
			if err := cs[1].Resume(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		for _, ch := range held {
			if r := <-ch; r.Err != nil {
				t.Fatalf("held request after Resume: %v", r.Err)
			}
		}
		for _, k := range []string{"mail:a", "mail:b", "sms:a", "other"} {
			pausedEverywhere(k, false)
		}
	})
}

// TestG9BoundedState: every Redis key written has a TTL, and an idle key leaves nothing behind
// once its window, deadlines and counters' TTL have passed.
func TestG9BoundedState(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		// The node's own grants are kept twice the claim timeout (the default's 10 s is the whole
		// wait below): 4 s here.
		c := h.client(Config{StatsTTL: time.Second, ClaimTimeout: 2 * time.Second, Default: Limit{Max: 2, Window: 200 * time.Millisecond}})
		ctx := context.Background()
		var chans []<-chan Result
		for i := range 8 {
			chans = append(chans, c.RequestAsync(ctx, "ttl:"+string(rune('a'+i%2)), func(context.Context) (any, error) { return nil, nil },
				WithTimeout(time.Second)))
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		c.Request(cctx, "ttl:a", func(context.Context) (any, error) { return nil, nil })
		cancel()
		for _, ch := range chans {
			<-ch
		}
		if h.rdb != nil {
			keys := h.keys(ctx)
			if len(keys) == 0 {
				t.Fatal("no Redis keys written")
			}
			for _, k := range keys {
				// -1 is a key without TTL; -2 (gone) and 0 (about to go) are fine.
				if ttl := h.rdb.PTTL(ctx, k).Val(); ttl == -1 {
					t.Errorf("key %s has no TTL", k)
				}
			}
		}
		// All that stays is the live node's own heartbeat (it has a TTL, checked above).
		heartbeat := h.prefix + ":hb:"
		eventually(t, 10*time.Second, "idle keys gone", func() bool {
			if h.rdb != nil {
				for _, k := range h.keys(ctx) {
					if !strings.HasPrefix(k, heartbeat) {
						return false
					}
				}
				return true
			}
			return h.mem.Len() == 0
		})
	})
}

// keys lists the harness's Redis keys (SCAN, as an admin listing would).
func (h *harness) keys(ctx context.Context) []string {
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, h.prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			out = append(out, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := h.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, scan)
	} else {
		err = scan(ctx, h.rdb.(*redis.Client))
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// TestG10InvalidInputRefused: invalid configs, limits, options and keys are refused with an
// error that names the field.
func TestG10InvalidInputRefused(t *testing.T) {
	configs := []struct {
		field string
		cfg   Config
	}{
		{"Config.Default.Max", Config{Default: Limit{Max: -1, Window: time.Second}}},
		{"Config.Default.Window", Config{Default: Limit{Max: 1}}},
		{`Config.Limits["a"].Window`, Config{Limits: map[string]Limit{"a": {Max: 1, Window: time.Microsecond}}}},
		{`Config.Limits["a"].Burst`, Config{Limits: map[string]Limit{"a": {Max: 1, Window: time.Second, Burst: 3}}}},
		{`Config.Limits["a"].MaxQueue`, Config{Limits: map[string]Limit{"a": {Max: 1, Window: time.Second, MaxQueue: -2}}}},
		{`Config.Limits["a"].Overflow`, Config{Limits: map[string]Limit{"a": {Max: 1, Window: time.Second, Overflow: 7}}}},
		{`Config.Limits["a"].Algorithm`, Config{Limits: map[string]Limit{"a": {Max: 1, Window: time.Second, Algorithm: 9}}}},
		{"Config.Limits", Config{Limits: map[string]Limit{"a{b}": {Max: 1, Window: time.Second}}}},
		{"Config.Prefix", Config{Prefix: "x{y}"}},
		{"Config.BatchSize", Config{BatchSize: -1}},
		{"Config.BatchSize", Config{BatchSize: 1001}},
		{"Config.ClaimTimeout", Config{PollInterval: time.Second, ClaimTimeout: time.Second}},
		{"Config.ShutdownTimeout", Config{ShutdownTimeout: -time.Second}},
	}
	for _, tc := range configs {
		_, err := New(tc.cfg)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New with bad %s: %v", tc.field, err)
		}
	}
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{})
		ctx := context.Background()
		for _, key := range []string{"", "a{b", "a}b", "tab\there", string([]byte{0xff, 0xfe}), strings.Repeat("k", 513)} {
			if _, err := c.Request(ctx, key, noop); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Request(%q): %v, want ErrInvalidKey", key, err)
			}
			if _, err := c.Status(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Status(%q): %v, want ErrInvalidKey", key, err)
			}
		}
		if _, err := c.Request(ctx, strings.Repeat("k", 512)+"", noop); err != nil {
			t.Errorf("a 512-byte key: %v", err)
		}
		if _, err := c.Request(ctx, "k", noop, WithPriority(9)); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "WithPriority") {
			t.Errorf("WithPriority(9): %v", err)
		}
		if err := c.SetLimit(ctx, "k", Limit{Max: 0, Window: time.Second}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Max") {
			t.Errorf("SetLimit with Max 0: %v", err)
		}
	})
}

// TestG10CorruptTicketDeadLettered: an undecodable entry at the head of a line goes to the
// key's dead-letter list and is counted; the requests behind it are served.
func TestG10CorruptTicketDeadLettered(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		c := h.client(Config{Default: Limit{Max: 5, Window: time.Second}})
		ctx := context.Background()
		if err := c.Pause(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		// Write garbage into the line through the backend, as a bad writer to Redis would.
		id := uuid.New()
		tk := &queue.Ticket{ID: id[:], Key: "k", Priority: PriorityNormal, Enqueued: 1, Deadline: c.node.ServerTime(time.Now().Add(time.Minute)), Owner: id[:]}
		p := c.node.Params("k")
		if _, err := c.be.Admit(ctx, p, tk, []byte("\xc1 not a ticket")); err != nil {
			t.Fatal(err)
		}
		ch := c.RequestAsync(ctx, "k", func(context.Context) (any, error) { return "served", nil })
		// The processor clears corrupt heads even while the key is paused.
		eventually(t, 5*time.Second, "corrupt ticket dead-lettered, valid one still queued", func() bool {
			st := status(t, c, "k")
			return st.DeadLetters == 1 && st.Queued == 1
		})
		if err := c.Resume(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if r := <-ch; r.Err != nil || r.Value != "served" {
			t.Fatalf("request behind the corrupt ticket: %+v", r)
		}
		st := status(t, c, "k")
		if st.DeadLetters != 1 || st.Counters.Corrupt != 1 || st.Queued != 0 {
			t.Fatalf("dead letters %d, corrupt %d, queued %d; want 1, 1, 0", st.DeadLetters, st.Counters.Corrupt, st.Queued)
		}
		if dls, err := c.DeadLetters(ctx, "k", 5); err != nil || len(dls) != 1 || string(dls[0].Raw) != "\xc1 not a ticket" || dls[0].JobID != "" {
			t.Fatalf("DeadLetters: %+v, %v; want the corrupt bytes", dls, err)
		}
	})
}
