package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
)

// TestBench: a short run on Redis prints the three sections with plausible figures, and leaves
// no key of its prefix behind while keys of other prefixes stay.
func TestBench(t *testing.T) {
	c := newCLI(t)
	rdb := redistest.Server(t).Client(t)
	ctx := context.Background()
	// A neighbour of the prefix bench makes, and one of the prefix it starts from.
	others := []string{c.prefix + "-bench-0:untouched", c.prefix + ":untouched", c.prefix + "-bench-9:{x}:stats"}
	for _, k := range others {
		if err := rdb.Set(ctx, k, "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { rdb.Del(context.Background(), others...) })
	code, out, errOut := c.run("bench", "--duration", "300ms")
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s%s", code, out, errOut)
	}
	checkBench(t, out, 1000)
	prefix := benchPrefix(t, out, c.prefix)
	if left := scanAll(t, rdb, prefix+"*"); len(left) > 0 {
		t.Errorf("keys of the run's prefix left behind: %q", left)
	}
	if n, err := rdb.Exists(ctx, others...).Result(); err != nil || n != int64(len(others)) {
		t.Errorf("%d of the other prefixes' %d keys remain (%v)", n, len(others), err)
	}
}

// TestBenchCluster: on a cluster, the run's keys are removed from every master.
func TestBenchCluster(t *testing.T) {
	cl := redistest.SharedCluster(t)
	start := cl.Prefix(t)
	var out, errOut bytes.Buffer
	args := []string{"--cluster", strings.Join(cl.Addrs(), ","), "--prefix", start, "bench", "--duration", "200ms", "--keys", "8", "--rate", "500"}
	if code := run(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("bench: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	checkBench(t, out.String(), 500)
	prefix := benchPrefix(t, out.String(), start)
	cc := cl.Client(t)
	err := cc.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		if left := scanAll(t, m, prefix+"*"); len(left) > 0 {
			t.Errorf("keys of the run's prefix left behind on %s: %q", m.Options().Addr, left)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBenchMemory: --memory measures the in-process backend, no Redis needed, nothing to remove.
func TestBenchMemory(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--memory", "--duration", "100ms"}, &out, &errOut); code != 0 {
		t.Fatalf("bench --memory: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	checkBench(t, out.String(), 1000)
	if !strings.Contains(out.String(), "in-process backend") || strings.Contains(out.String(), "removed") {
		t.Errorf("bench --memory output:\n%s", out.String())
	}
}

// TestBenchNeedsRedis: without a Redis named, bench refuses to run rather than write to the
// default address.
func TestBenchNeedsRedis(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"bench", "--duration", "100ms"}, &out, &errOut)
	if code != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), "name the Redis to measure with --redis") {
		t.Fatalf("bench without a Redis: exit %d, stdout %q, stderr %q; want exit 2 and a reason", code, out.String(), errOut.String())
	}
}

// checkBench checks that out holds the three sections with plausible figures: rates above zero,
// every p50 at most its p99, requests that waited in the queued path and a rate there not far
// above its limit (the edges of the measured span allow a little over).
func checkBench(t *testing.T, out string, limit float64) {
	t.Helper()
	if strings.Contains(out, "errors") {
		t.Errorf("errors in the run:\n%s", out)
	}
	fast, rest, ok1 := strings.Cut(out, "\nqueued path:")
	queued, jobs, ok2 := strings.Cut(rest, "\ndurable jobs:")
	if !ok1 || !ok2 || !strings.Contains(fast, "\nfast path:") {
		t.Fatalf("want three sections, got:\n%s", out)
	}
	rate(t, fast, `throughput +(\d+) req/s`)
	percentiles(t, fast, "latency", true)
	if r := rate(t, queued, `throughput +(\d+) req/s after the first window`); r > 1.25*limit {
		t.Errorf("queued path: %v req/s under a limit of %v/s\n%s", r, limit, out)
	}
	percentiles(t, queued, "wait in line", true)
	if waited := rate(t, queued, `\((\d+) of \d+ requests waited\)`); waited == 0 {
		t.Errorf("no request waited in the queued path:\n%s", out)
	}
	percentiles(t, queued, "slot→start", false) // a start may come on its slot: 0 is plausible
	rate(t, jobs, `enqueue +(\d+) jobs/s`)
	rate(t, jobs, `processing +(\d+) jobs/s`)
	percentiles(t, jobs, "enqueue→start", true)
}

// rate returns the number pattern's group matches in section, failing unless it is above zero.
func rate(t *testing.T, section, pattern string) float64 {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(section)
	if m == nil {
		t.Errorf("no %q in:\n%s", pattern, section)
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil || v <= 0 {
		t.Errorf("%q: %q is not above zero", pattern, m[1])
	}
	return v
}

// percentiles checks the line "label p50 D  p99 D" of section: p50 <= p99, and p50 above zero
// when positive says so.
func percentiles(t *testing.T, section, label string, positive bool) {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(label) + ` +p50 (\S+)  p99 (\S+)`).FindStringSubmatch(section)
	if m == nil {
		t.Errorf("no %s percentiles in:\n%s", label, section)
		return
	}
	p50, err1 := time.ParseDuration(m[1])
	p99, err2 := time.ParseDuration(m[2])
	if err1 != nil || err2 != nil || p50 > p99 || p50 < 0 || (positive && p50 == 0) {
		t.Errorf("%s: p50 %q, p99 %q: not plausible", label, m[1], m[2])
	}
}

// benchPrefix returns the prefix the run says it used, which must be start's bench prefix.
func benchPrefix(t *testing.T, out, start string) string {
	t.Helper()
	m := regexp.MustCompile(`prefix (\S+);`).FindStringSubmatch(out)
	if m == nil || !strings.HasPrefix(m[1], start+"-bench-") || !strings.Contains(out, "removed the run's") {
		t.Fatalf("want the run's prefix (%s-bench-…) and its removal in:\n%s", start, out)
	}
	return m[1]
}

func scanAll(t *testing.T, rdb redis.Cmdable, pattern string) []string {
	t.Helper()
	var all []string
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(context.Background(), cursor, pattern, 1000).Result()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, keys...)
		if cursor = next; cursor == 0 {
			return all
		}
	}
}
