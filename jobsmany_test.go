package rateltd

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/lua"
	"github.com/rateltd/rateltd/processor"
)

// TestEnqueueManyKeepsOrder: a batch longer than one round trip carries is queued in the order
// of its payloads, behind the job already waiting, each job under the id returned at its place.
func TestEnqueueManyKeepsOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		enq := h.client(jobConfig())
		wcfg := jobConfig()
		wcfg.Workers = 1 // one job at a time: they run in the order of the line
		worker := h.client(wcfg)
		first := enqueue(t, enq, "batch", "echo", "first")
		n := processor.MaxEnqueueBatch + 10
		payloads := make([][]byte, n)
		for i := range payloads {
			payloads[i] = []byte(strconv.Itoa(i))
		}
		ids, err := enq.EnqueueMany(context.Background(), "batch", "echo", payloads)
		if err != nil || len(ids) != n {
			t.Fatalf("EnqueueMany of %d jobs: %d ids, %v", n, len(ids), err)
		}
		if st := status(t, enq, "batch"); st.Jobs != n+1 {
			t.Fatalf("%d jobs not ended after the batch, want %d", st.Jobs, n+1)
		}
		var mu sync.Mutex
		var order []string
		if err := worker.Handle("echo", func(_ context.Context, p []byte) ([]byte, error) {
			mu.Lock()
			order = append(order, string(p))
			mu.Unlock()
			return p, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := wait(t, enq, first); err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			got, err := wait(t, enq, id)
			if err != nil || string(got) != strconv.Itoa(i) {
				t.Fatalf("Wait(ids[%d]) = %q, %v; want %d", i, got, err, i)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		want := "first," + strings.Join(strings.Fields(seq(n)), ",")
		if got := strings.Join(order, ","); got != want {
			t.Fatalf("jobs ran in the order %.80s..., want %.80s...", got, want)
		}
	})
}

// seq is "0 1 ... n-1".
func seq(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strconv.Itoa(i) + " ")
	}
	return b.String()
}

// TestEnqueueManyRefusals: the first job refused stops the batch, with the ids of the jobs
// queued before it; a payload too large or a job name fails the call before any job is queued.
func TestEnqueueManyRefusals(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		cfg := jobConfig()
		cfg.MaxPayload = 16
		cfg.Limits = map[string]Limit{"full": {Max: 1000, Window: time.Second, MaxQueue: 3}}
		c := h.client(cfg)
		ctx := context.Background()
		enqueue(t, c, "full", "later", "0")
		ids, err := c.EnqueueMany(ctx, "full", "later", [][]byte{[]byte("1"), []byte("2"), []byte("3"), []byte("4")})
		if !errors.Is(err, ErrQueueFull) || len(ids) != 2 {
			t.Fatalf("EnqueueMany of 4 jobs with room for 2: %d ids, %v; want 2 and ErrQueueFull", len(ids), err)
		}
		if st := status(t, c, "full"); st.Jobs != 3 {
			t.Fatalf("%d jobs waiting, want 3", st.Jobs)
		}
		ids, err = c.EnqueueMany(ctx, "room", "later", [][]byte{[]byte("ok"), make([]byte, 17)})
		if !errors.Is(err, ErrPayloadTooLarge) || len(ids) != 0 {
			t.Fatalf("EnqueueMany with a payload of 17 bytes: %d ids, %v; want none and ErrPayloadTooLarge", len(ids), err)
		}
		ids, err = c.EnqueueMany(ctx, "room", "later", [][]byte{[]byte("ok")}, WithJobName("one"))
		if !errors.Is(err, ErrInvalidConfig) || len(ids) != 0 {
			t.Fatalf("EnqueueMany with a job name: %d ids, %v; want none and ErrInvalidConfig", len(ids), err)
		}
		if st := status(t, c, "room"); st.Jobs != 0 {
			t.Fatalf("%d jobs queued by failed calls", st.Jobs)
		}
	})
}

// scriptHook counts the calls of one script.
type scriptHook struct {
	s  *redis.Script
	mu sync.Mutex
	n  int
}

func (h *scriptHook) note(cmd redis.Cmder) {
	a := cmd.Args()
	src, _ := lua.Source(h.s.Hash())
	fn, _, _ := lua.Function(h.s.Hash())
	if len(a) > 1 && (a[0] == "evalsha" || a[0] == "eval" || a[0] == "fcall") && (a[1] == h.s.Hash() || a[1] == src || a[1] == fn) {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
}

func (h *scriptHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// TestEnqueueManyOneRoundTrip: a batch of 100 jobs is one call of the batch script, and no
// call of Enqueue's.
func TestEnqueueManyOneRoundTrip(t *testing.T) {
	srv := redistest.Server(t)
	rdb, prefix := srv.Client(t), srv.Prefix(t)
	many, one := &scriptHook{s: lua.EnqueueMany}, &scriptHook{s: lua.Enqueue}
	rdb.AddHook(redistest.EachCommand(many.note))
	rdb.AddHook(redistest.EachCommand(one.note))
	cfg := jobConfig()
	cfg.Redis, cfg.Prefix = rdb, prefix
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payloads := make([][]byte, 100)
	for i := range payloads {
		payloads[i] = []byte(strconv.Itoa(i))
	}
	if ids, err := c.EnqueueMany(context.Background(), "bulk", "h", payloads); err != nil || len(ids) != 100 {
		t.Fatalf("EnqueueMany: %d ids, %v", len(ids), err)
	}
	if m, o := many.count(), one.count(); m != 1 || o != 0 {
		t.Fatalf("100 jobs sent %d batch scripts and %d single enqueues, want 1 and 0", m, o)
	}
}
