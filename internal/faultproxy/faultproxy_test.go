package faultproxy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// proxied starts a proxy in front of the shared test server and a go-redis client through it
// that does not retry and stops at its ctx's deadline, so that every fault shows in the
// command's error.
func proxied(t *testing.T) (*Proxy, *redis.Client, *redis.Client, string) {
	t.Helper()
	srv := redistest.Server(t)
	p, err := Start(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, PoolSize: 1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return p, c, srv.Client(t), srv.Prefix(t)
}

// rtt times one PING, which must succeed.
func rtt(t *testing.T, c *redis.Client) time.Duration {
	t.Helper()
	start := time.Now()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING through the proxy: %v", err)
	}
	return time.Since(start)
}

func TestLatencyAndJitter(t *testing.T) {
	p, c, _, _ := proxied(t)
	rtt(t, c) // dialled
	p.SetLatency(100*time.Millisecond, 0)
	if d := rtt(t, c); d < 200*time.Millisecond {
		t.Fatalf("PING took %v with 100ms each way; want at least 200ms", d)
	}
	p.SetLatency(0, 50*time.Millisecond)
	var lo, hi time.Duration = time.Hour, 0
	for range 20 {
		d := rtt(t, c)
		lo, hi = min(lo, d), max(hi, d)
	}
	// Two draws in [0, 50ms) per PING: twenty PINGs do not all take the same time, and none
	// takes much more than 100ms.
	if hi-lo < 5*time.Millisecond || hi > time.Second {
		t.Fatalf("PINGs with 0-50ms of jitter each way took %v to %v", lo, hi)
	}
	p.Heal()
	if d := rtt(t, c); d > 100*time.Millisecond {
		t.Fatalf("PING took %v after Heal", d)
	}
}

func TestBandwidth(t *testing.T) {
	p, c, direct, prefix := proxied(t)
	ctx := context.Background()
	key := prefix + ":big"
	if err := direct.Set(ctx, key, strings.Repeat("x", 20_000), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	rtt(t, c)
	p.SetBandwidth(20_000)
	start := time.Now()
	if err := c.Get(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Fatalf("20kB at 20kB/s came in %v", d)
	}
	p.Heal()
	start = time.Now()
	if err := c.Get(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("20kB took %v after Heal", d)
	}
}

// TestReset: a command waiting for its answer (held back by a blackhole on the way down) fails
// at once when its connection is reset, well before its deadline; the next one dials anew.
func TestReset(t *testing.T) {
	p, c, _, _ := proxied(t)
	rtt(t, c)
	p.Blackhole(Downstream)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- c.Ping(ctx).Err() }()
	// The PING is in flight once its bytes went up; a reset before that would only reset an
	// idle connection. Reset until the PING has failed.
	var err error
	for done := false; !done; {
		if p.Reset() > 1 {
			t.Fatal("more than the client's one connection open")
		}
		select {
		case err = <-errc:
			done = true
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err == nil || errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("PING on a reset connection: %v after %v; want a connection error at once", err, time.Since(start))
	}
	p.Heal()
	rtt(t, c) // a new connection
	if p.Open() != 1 {
		t.Fatalf("%d connections open; want 1", p.Open())
	}
}

func TestBlackholeBoth(t *testing.T) {
	p, c, _, _ := proxied(t)
	rtt(t, c)
	p.Blackhole(Both)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx).Err(); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("PING into a blackhole: %v; want a timeout", err)
	}
	// The client may drop its timed-out connection at any moment: read the count once.
	if open := p.Open(); open != 0 && open != 1 {
		t.Fatalf("%d connections open; want 0 or 1", open)
	}
	p.Heal()
	rtt(t, c)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// TestBlackholeOneWay: with the way up blackholed a write never reaches Redis; with the way
// down blackholed it does, but its answer never comes back.
func TestBlackholeOneWay(t *testing.T) {
	p, c, direct, prefix := proxied(t)
	rtt(t, c)
	bg := context.Background()
	for _, tc := range []struct {
		dir     Direction
		reaches bool
	}{{Upstream, false}, {Downstream, true}} {
		key := prefix + ":" + map[Direction]string{Upstream: "up", Downstream: "down"}[tc.dir]
		p.Blackhole(tc.dir)
		ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
		err := c.Set(ctx, key, "1", time.Minute).Err()
		cancel()
		if err == nil {
			t.Fatalf("SET answered through a blackhole of direction %d", tc.dir)
		}
		reached := func() bool { return direct.Exists(bg, key).Val() == 1 }
		if tc.reaches {
			deadline := time.Now().Add(2 * time.Second)
			for !reached() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if reached() != tc.reaches {
			t.Fatalf("blackhole of direction %d: the SET reached Redis: %v; want %v", tc.dir, reached(), tc.reaches)
		}
		p.Heal()
		rtt(t, c)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	p, c, _, _ := proxied(t)
	rtt(t, c)
	p.SetLatency(time.Second, 0) // a pipe asleep in a delay must end too
	go c.Ping(context.Background())
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p.Open() != 0 {
		t.Fatalf("%d connections open after Close", p.Open())
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
