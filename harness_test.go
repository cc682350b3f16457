package rateltd

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/queue"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// harness gives one test the nodes of one backend: for Redis, Clients on a real redis-server
// under a prefix of the test's own; in-process, Clients sharing one Memory store, which stands
// for Redis exactly as several processes share one Redis.
type harness struct {
	t      *testing.T
	kind   string
	rdb    redis.UniversalClient
	mem    *queue.Memory
	prefix string
}

// eachBackend runs f as a parallel subtest per backend: "memory", "redis" and "cluster" (three
// masters; every per-key script on one slot).
func eachBackend(t *testing.T, f func(t *testing.T, h *harness)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		f(t, &harness{t: t, kind: "memory", mem: queue.NewMemory()})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Server(t)
		f(t, &harness{t: t, kind: "redis", rdb: srv.Client(t), prefix: srv.Prefix(t)})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.SharedCluster(t)
		f(t, &harness{t: t, kind: "cluster", rdb: cl.Client(t), prefix: cl.Prefix(t)})
	})
}

// client starts a node with cfg (Redis and Prefix are the harness's) and closes it at cleanup.
func (h *harness) client(cfg Config) *Client {
	h.t.Helper()
	cfg.Prefix = h.prefix
	var c *Client
	var err error
	if h.rdb != nil {
		cfg.Redis = h.rdb
		c, err = New(cfg)
	} else {
		cfg = cfg.WithDefaults()
		if err = cfg.Validate(); err == nil {
			c, err = newClient(context.Background(), cfg, h.mem)
		}
	}
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// clients starts n nodes with the same cfg.
func (h *harness) clients(n int, cfg Config) []*Client {
	cs := make([]*Client, n)
	for i := range cs {
		cs[i] = h.client(cfg)
	}
	return cs
}

// checkWindows fails the test when a window of length w holds more than max of grants (µs of
// Redis server time, sorted): the exact check of G1, on the grant times Redis recorded.
func checkWindows(t *testing.T, grants []int64, w time.Duration, max int) {
	t.Helper()
	for i := range grants {
		j, _ := slices.BinarySearch(grants, grants[i]+w.Microseconds())
		if n := j - i; n > max {
			t.Fatalf("%d grants within %v of Redis time from grant %d, limit %d", n, w, i, max)
		}
	}
}

// eventually fails the test unless cond holds within d, checking every 5ms.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// status reads key's status or fails the test.
func status(t *testing.T, c *Client, key string) Status {
	t.Helper()
	st, err := c.Status(context.Background(), key)
	if err != nil {
		t.Fatalf("Status(%q): %v", key, err)
	}
	return st
}

// waitQueued waits until key has n requests waiting, as c sees it.
func waitQueued(t *testing.T, c *Client, key string, n int) {
	t.Helper()
	eventually(t, 5*time.Second, "queued == "+strconv.Itoa(n), func() bool { return status(t, c, key).Queued == n })
}

// recorder notes when and in which order fns ran.
type recorder struct {
	mu     sync.Mutex
	starts []time.Time
	names  []string
}

func (r *recorder) fn(name string) func(context.Context) (any, error) {
	return func(context.Context) (any, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.starts = append(r.starts, time.Now())
		r.names = append(r.names, name)
		return name, nil
	}
}

func (r *recorder) snapshot() ([]time.Time, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.starts...), append([]string(nil), r.names...)
}
