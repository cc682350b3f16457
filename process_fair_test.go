package rateltd

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/processor"
)

// Fair shares between tenants (G15) across OS processes; see process_test.go for the worker
// processes.

// fairLimits are the keys of tenantWorker, configured alike in every process: one start per
// 50ms (a token bucket of burst 1), so that grants are far apart in Redis time and their order
// is plain. On "fair-1" every tenant weighs 1; on "fair-3" tenant b weighs 3.
var fairLimits = map[string]Limit{
	"fair-1": {Algorithm: TokenBucket, Max: 20, Window: time.Second, Burst: 1, MaxQueue: 5000, QueueTimeout: 5 * time.Minute},
	"fair-3": {Algorithm: TokenBucket, Max: 20, Window: time.Second, Burst: 1, MaxQueue: 5000, QueueTimeout: 5 * time.Minute,
		TenantWeights: map[string]int{"b": 3}},
}

// tenantWorker makes requests of tenant RATELTD_WORKER_TENANT as told on stdin, one command a
// line: "req <key> <n>" prints "sent <key> <server µs>", the time of the key's Redis node before
// the requests, and makes n requests on key; each prints "granted <key> <server µs>" when
// granted. It prints "ready" once its Client runs, and runs until it is killed.
func tenantWorker() {
	tenant := os.Getenv("RATELTD_WORKER_TENANT")
	c, stop := workerClient(Config{Limits: fairLimits})
	defer stop()
	say := lineWriter()
	say("ready")
	ctx := context.Background()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var key string
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "req %s %d", &key, &n); err != nil {
			say("error %q: %v", sc.Text(), err)
			continue
		}
		now, err := keyTime(ctx, c.cfg.Redis, key)
		if err != nil {
			say("error time of %s: %v", key, err)
			continue
		}
		say("sent %s %d", key, now)
		for range n {
			go func() {
				g, err := c.node.Acquire(ctx, processor.Request{Key: key, Priority: PriorityNormal, Tenant: tenant})
				if err != nil {
					say("error %s: %v", key, err)
					return
				}
				say("granted %s %d", key, g.At)
			}()
		}
	}
	select {} // until killed
}

// keyTime is the time of the Redis node that holds key, µs: the script declares a key of key's
// hash tag, which routes it there on a cluster, and touches nothing.
func keyTime(ctx context.Context, rdb redis.UniversalClient, key string) (int64, error) {
	return rdb.Eval(ctx, "local t = redis.call('TIME') return t[1] * 1000000 + t[2]", []string{"{" + key + "}"}).Int64()
}

// tenantGrant is one grant of a fair run: whose, and when in Redis time (µs).
type tenantGrant struct {
	tenant string
	at     int64
}

// TestG15AcrossProcesses: on a paused key, process a queues 1,000 requests of tenant a, then
// process b 10 of tenant b; the key resumes, and each process serves its own. Merged by their
// Redis time, the grants go to a and b in the ratio of their weights while b has any waiting —
// 1:1, and 3:1 for b on a key whose weights, alike in every process, say so — within one
// grant. A single request of tenant c from a third process, made once the line moves, starts
// within one turn of the rotation: at most 3 grants after it was queued (a's and b's turn, and
// one in flight), not behind a's flood. First come first served, b's 10 would wait for all of
// a's 1,000 (50s at 20 per second).
func TestG15AcrossProcesses(t *testing.T) {
	eachRedis(t, func(t *testing.T, r sharedRedis) {
		c, err := New(Config{Redis: r.client, Prefix: r.prefix, PollInterval: 100 * time.Millisecond, Limits: fairLimits})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var ws []*worker
		for _, tn := range []string{"a", "b", "c"} {
			ws = append(ws, startProcesses(t, 1, r.env, "RATELTD_WORKER_MODE=tenants", "RATELTD_WORKER_PREFIX="+r.prefix,
				"RATELTD_WORKER_TENANT="+tn)...)
		}
		t.Cleanup(func() {
			for i, w := range ws {
				w.mu.Lock()
				if t.Failed() || len(w.errs) > 0 {
					t.Logf("worker %d said %d lines, errors %v", i, len(w.lines), w.errs)
				}
				w.mu.Unlock()
			}
		})
		for i, w := range ws {
			eventually(t, 20*time.Second, fmt.Sprintf("worker %d ready", i), func() bool { return w.said("ready") == 1 })
		}
		for _, tc := range []struct {
			key string
			wB  int
		}{{"fair-1", 1}, {"fair-3", 3}} {
			grants, cSent := fairAcross(t, c, ws, tc.key)
			checkFairAcross(t, tc.key, grants, cSent, 10, tc.wB)
		}
	})
}

// fairAcross runs one key's fair run of TestG15AcrossProcesses on workers a, b and c, and
// returns every grant made on the key, in Redis time order, and when c's request was sent.
func fairAcross(t *testing.T, c *Client, ws []*worker, key string) ([]tenantGrant, int64) {
	t.Helper()
	ctx := context.Background()
	if err := c.Pause(ctx, key); err != nil {
		t.Fatal(err)
	}
	queued := func(n int) {
		t.Helper()
		eventually(t, 30*time.Second, fmt.Sprintf("%d waiting on %s", n, key), func() bool { return status(t, c, key).Queued == n })
	}
	ws[0].send(t, "req %s 1000", key)
	queued(1000)
	ws[1].send(t, "req %s 10", key)
	queued(1010)
	if st := status(t, c, key); fmt.Sprint(st.Tenants) != fmt.Sprint([]TenantWaiting{{"a", 1000}, {"b", 10}}) {
		t.Fatalf("%s: tenants waiting %v, want a 1000 and b 10", key, st.Tenants)
	}
	if err := c.Resume(ctx, key); err != nil {
		t.Fatal(err)
	}
	granted := func(w *worker) int { return len(w.fields("granted " + key + " ")) }
	eventually(t, 10*time.Second, key+": 4 grants", func() bool { return granted(ws[0])+granted(ws[1]) >= 4 })
	ws[2].send(t, "req %s 1", key)
	// Fair, b's and c's are served within about 25 grants, 1.25s; first come first served,
	// b's wait 50s behind a's.
	deadline := time.Now().Add(20 * time.Second)
	for granted(ws[1]) < 10 || granted(ws[2]) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: after 20s, b has %d of 10 grants and c %d of 1; a has %d", key, granted(ws[1]), granted(ws[2]), granted(ws[0]))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Paused, the key grants no more: every grant made is then printed by its owner in time.
	if err := c.Pause(ctx, key); err != nil {
		t.Fatal(err)
	}
	made := status(t, c, key).Counters.Granted
	eventually(t, 10*time.Second, key+": every grant reported", func() bool {
		return int64(granted(ws[0])+granted(ws[1])+granted(ws[2])) == made
	})
	var grants []tenantGrant
	for i, tn := range []string{"a", "b", "c"} {
		if len(ws[i].errs) > 0 {
			t.Fatalf("worker %s: %v", tn, ws[i].errs)
		}
		for _, f := range ws[i].fields("granted " + key + " ") {
			at, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				t.Fatalf("worker %s: grant at %q: %v", tn, f[0], err)
			}
			grants = append(grants, tenantGrant{tn, at})
		}
	}
	slices.SortStableFunc(grants, func(x, y tenantGrant) int { return int(x.at - y.at) })
	sent := ws[2].fields("sent " + key + " ")
	if len(sent) != 1 {
		t.Fatalf("%s: c sent %v", key, sent)
	}
	cSent, err := strconv.ParseInt(sent[0][0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return grants, cSent
}

// checkFairAcross checks one fair run: while b (nB requests of weight wB) had any waiting, a
// got nB/wB grants within one (or 5%); c's single request, sent at cSent, had at most 3 others
// granted between.
func checkFairAcross(t *testing.T, key string, grants []tenantGrant, cSent int64, nB, wB int) {
	t.Helper()
	var order strings.Builder
	a, bLeft, bLast, cAt, since := 0, nB, int64(0), int64(0), 0
	for _, g := range grants {
		order.WriteString(g.tenant)
		switch {
		case g.tenant == "b":
			bLeft--
			bLast = g.at
		case g.tenant == "a" && bLeft > 0:
			a++
		case g.tenant == "c":
			cAt = g.at
		}
		if g.tenant != "c" && g.at > cSent && cAt == 0 {
			since++
		}
	}
	t.Logf("%s: grants in order %s; c's after %d others since it was sent", key, order.String(), since)
	want := float64(nB) / float64(wB)
	if slack := max(1, 0.05*want); math.Abs(float64(a)-want) > slack {
		t.Errorf("%s: a got %d grants while b's %d (weight %d) waited, want %.1f ± %.1f", key, a, nB, wB, want, slack)
	}
	if cAt == 0 || since > 3 {
		t.Errorf("%s: c's request started after %d other grants since it was sent, want at most 3", key, since)
	}
	if bLast < cSent {
		t.Logf("%s: b had none waiting when c's request came: the machine was slow", key)
	}
}
