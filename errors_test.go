package rateltd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/queue"
)

// TestAdminErrorsKeepTheirCause: an admin call whose ctx ended returns ctx's error (not
// ErrUnavailable, which would say Redis failed), and an outage keeps its cause beside
// ErrUnavailable.
func TestAdminErrorsKeepTheirCause(t *testing.T) {
	t.Parallel()
	srv := redistest.Fresh(t)
	c, err := New(Config{Redis: srv.Client(t), Prefix: srv.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Status(cancelled, "k"); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("Status with a cancelled ctx: %v; want context.Canceled, not ErrUnavailable", err)
	}
	if err := c.Pause(cancelled, "k"); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("Pause with a cancelled ctx: %v; want context.Canceled, not ErrUnavailable", err)
	}
	srv.Kill()
	_, err = c.Status(context.Background(), "k")
	var cause interface{ Timeout() bool } // a net.Error: the dial's own
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &cause) {
		t.Errorf("Status with Redis down: %v; want ErrUnavailable wrapping the connection's error", err)
	}
}

// logBuffer is a slog handler's output, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestUnreadableRuntimeConfigReported: a runtime limit or pause that cannot be read from
// Redis is logged and counted on the key, once per node; the key keeps its configured limit,
// and an unreadable pause holds until Resume.
func TestUnreadableRuntimeConfigReported(t *testing.T) {
	t.Parallel()
	srv := redistest.Server(t)
	rdb := srv.Client(t)
	prefix := srv.Prefix(t)
	ctx := context.Background()
	// As a bad writer (or another version) would leave them.
	if err := rdb.HSet(ctx, prefix+":config", "limit:k", "\xc1 not a limit", "pause:grp", "soon").Err(); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	c, err := New(Config{Redis: rdb, Prefix: prefix, PollInterval: 50 * time.Millisecond,
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
		Default: Limit{Max: 7, Window: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if lim, _ := c.LimitOf("k"); lim.Max != 7 {
		t.Errorf("limit of k = %d; want the configured 7", lim.Max)
	}
	time.Sleep(300 * time.Millisecond) // several polls, each reading the bad fields again
	st := status(t, c, "k")
	if st.Counters.BadConfig != 1 {
		t.Errorf("BadConfig = %d after several polls; want 1 (once per node and value)", st.Counters.BadConfig)
	}
	for _, want := range []string{`limit:k`, `pause:grp`, "unreadable runtime config"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
	if st := status(t, c, "grp:x"); !st.Paused || !st.PausedUntil.IsZero() {
		t.Errorf("key of a group whose pause is unreadable: paused %v until %v; want paused with no end", st.Paused, st.PausedUntil)
	}
	if err := c.Resume(ctx, "grp"); err != nil {
		t.Fatal(err)
	}
	if st := status(t, c, "grp:x"); st.Paused {
		t.Error("Resume did not clear an unreadable pause")
	}
}

// TestUnreadableLocalGrantGivenBack: a ticket the grant script takes but Go cannot read (the
// script reads fewer of its fields) has its grant given back to the window, and is counted
// and logged, rather than vanishing with a slot of the window.
func TestUnreadableLocalGrantGivenBack(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		var logs logBuffer
		c := h.client(Config{Default: Limit{Max: 5, Window: time.Minute}, PollInterval: 50 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		ctx := context.Background()
		if err := c.Pause(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		// Owned by c's node, with an enqueue time no valid ticket has.
		id := uuid.New()
		tk := &queue.Ticket{ID: id[:], Key: "k", Priority: PriorityNormal, Enqueued: -5,
			Deadline: c.node.ServerTime(time.Now().Add(time.Minute)), Owner: c.node.ID()}
		raw, err := tk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.be.Admit(ctx, c.node.Params("k"), tk, raw); err != nil {
			t.Fatal(err)
		}
		if err := c.Resume(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		c.node.Recheck("k") // Admit alone does not tell the processor of the line
		eventually(t, 5*time.Second, "the unreadable ticket has left the line", func() bool { return status(t, c, "k").Queued == 0 })
		eventually(t, 5*time.Second, "it is counted as corrupt", func() bool {
			st := status(t, c, "k")
			return st.Counters.Corrupt == 1
		})
		if st := status(t, c, "k"); st.Used != 0 || st.Remaining != 5 {
			t.Errorf("used %d, remaining %d; want the window whole (0, 5)", st.Used, st.Remaining)
		}
		if h.kind != "memory" && !strings.Contains(logs.String(), "granted ticket unreadable") {
			t.Errorf("not logged:\n%s", logs.String())
		}
	})
}
