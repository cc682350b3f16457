package rateltd

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd/internal/redistest"
)

// eachFreshRedis is eachRedis on a private server and a private cluster, for tests that do what
// would disturb other tests sharing a server (flush its scripts).
func eachFreshRedis(t *testing.T, f func(t *testing.T, r sharedRedis)) {
	if os.Getenv("RATELTD_WORKER") != "" {
		t.Skip("a worker runs no tests")
	}
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := redistest.Fresh(t)
		f(t, sharedRedis{env: "RATELTD_WORKER_ADDR=" + srv.Addr(), client: srv.Client(t), prefix: srv.Prefix(t)})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.FreshCluster(t)
		f(t, sharedRedis{env: "RATELTD_WORKER_CLUSTER=" + strings.Join(cl.Addrs(), ","), client: cl.Client(t), prefix: cl.Prefix(t)})
	})
}

// TestG12ScriptsFlushedAcrossProcesses: three processes × 150 requests share one key of 100 per
// second while the test flushes Redis's scripts every 50ms. No request fails, no second of
// Redis time holds more than 100 grants, and the last grant comes near the ideal 4s after the
// first: a lost script costs the re-send of the commands that got NOSCRIPT, not a second run of
// the others (which charged the window twice and dropped grants: 5.5s and 7.5s, or an
// ErrUnavailable, before).
func TestG12ScriptsFlushedAcrossProcesses(t *testing.T) {
	eachFreshRedis(t, func(t *testing.T, r sharedRedis) {
		const max, per, procs = 100, 150, 3
		ws := startWorkers(t, r, procs, per, max)
		stop := redistest.FlushScriptsEvery(t, r.client, 50*time.Millisecond)
		var grants []int64
		for i, w := range ws {
			select {
			case <-w.done:
			case <-time.After(60 * time.Second):
				t.Fatalf("worker %d did not finish", i)
			}
			if len(w.errs) > 0 {
				t.Fatalf("worker %d: %d grants, %d errors, the first: %s", i, len(w.grants), len(w.errs), w.errs[0])
			}
			if len(w.grants) != per {
				t.Fatalf("worker %d: %d grants, want %d", i, len(w.grants), per)
			}
			grants = append(grants, w.grants...)
		}
		flushes := stop()
		slices.Sort(grants)
		checkWindows(t, grants, time.Second, max)
		// 450 at 100/s: the last grant 4 windows after the first, and near that. The margin
		// allows for the workers starting apart and a loaded machine; double charges and
		// dropped grants cost more than a second each time.
		ideal := time.Duration(procs*per/max) * time.Second
		span := time.Duration(grants[len(grants)-1]-grants[0]) * time.Microsecond
		if span < ideal || span > ideal+ideal/4 {
			t.Fatalf("grants spread over %v with %d script flushes; ideal %v (+25%% allowed)", span, flushes, ideal)
		}
		lost, err := redistest.NoScriptReplies(context.Background(), r.client)
		if err != nil {
			t.Fatal(err)
		}
		if lost == 0 {
			t.Fatalf("%d script flushes, yet no command met NOSCRIPT: the test shows nothing", flushes)
		}
		t.Logf("grants spread over %v; %d script flushes, %d NOSCRIPT replies", span, flushes, lost)
	})
}
