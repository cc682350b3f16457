package rateltd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// chaosSpec is one chaos scenario: the Redis the nodes use and the fault.
type chaosSpec struct {
	// nodeRedis returns node i's own go-redis client (through a fault proxy, or straight to
	// Redis when the fault is in Redis itself); direct reaches Redis with no fault between.
	nodeRedis func(i int) redis.UniversalClient
	direct    redis.UniversalClient
	prefix    string
	// shortCallers adds, per key, callers whose deadline is shorter than a round trip.
	shortCallers int
	// The load runs for before, then inject starts the fault, which lasts faultFor (or as long
	// as inject takes), then heal ends it and the load runs for after.
	before, faultFor, after time.Duration
	inject, heal            func()
	// recoverWithin is how soon after the heal every key must be served at its limit again.
	recoverWithin time.Duration
	// allow returns why an outcome that the scenario forbids is wrong; "" when it is allowed.
	// Outcomes are checked for one fn run at most, and by their deadline, whatever it says.
	allow func(o outcome) string
	// memoryLost says the fault loses Redis's memory: the counters are not checked, the limit
	// is checked from the heal on (a window over the restart is logged), and a durable job lost
	// with it may end its Wait with ErrJobNotFound or at the Wait's ctx (counted and logged).
	memoryLost bool
}

// chaosResult is what a scenario measured.
type chaosResult struct {
	recovery map[string]time.Duration // by key: from the heal until the limit is served again
	during   map[string]float64       // by key: grants per second while the fault lasted
	load     *chaosLoad
}

// lateSlack is how long after its deadline an outcome may come on a loaded 2-core machine.
const lateSlack = time.Second

// runChaos runs one scenario and checks every guarantee; it returns what it measured.
func runChaos(t *testing.T, s chaosSpec) chaosResult {
	t.Helper()
	grants := &grantLog{}
	nodes := make([]*Client, chaosNodes)
	for i := range nodes {
		rdb := s.nodeRedis(i)
		t.Cleanup(func() { rdb.Close() }) // after the node's Close (cleanups run last first)
		nodes[i] = chaosNode(t, rdb, s.prefix, grants)
	}
	load := newChaosLoad(t, nodes, grants)
	load.shortCallers = s.shortCallers
	load.start()
	serverNow := func() int64 { // right after a failover the direct client may not have found the new master
		var err error
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			var tm time.Time
			if tm, err = s.direct.Time(context.Background()).Result(); err == nil {
				return tm.UnixMicro()
			}
		}
		t.Fatalf("TIME: %v", err)
		return 0
	}
	time.Sleep(s.before) // the steady load's span, not a wait for a condition
	faultAt := serverNow()
	if s.inject != nil {
		s.inject()
	}
	time.Sleep(s.faultFor)
	if s.heal != nil {
		s.heal()
	}
	healAt := serverNow()
	time.Sleep(s.after)
	load.end()
	for _, c := range nodes {
		c.Close() // writes the counts still held by each node
	}
	t.Logf("load: %s", load.summary())

	res := chaosResult{recovery: map[string]time.Duration{}, during: map[string]float64{}, load: load}
	for _, key := range append(slices.Clone(chaosKeys), chaosJobKey) {
		ts := grants.times(key)
		if s.memoryLost {
			if over := overLimit(ts); over != "" {
				t.Logf("key %s, over the restart (the window lost with Redis's memory): %s", key, over)
			}
			i, _ := slices.BinarySearch(ts, healAt)
			ts = ts[i:]
		}
		if over := overLimit(ts); over != "" {
			t.Errorf("key %s: %s", key, over)
		}
		res.during[key] = float64(countBetween(ts, faultAt, healAt)) / (float64(healAt-faultAt) / 1e6)
		if key == chaosJobKey {
			continue // jobs come at 10/s, under the limit
		}
		rec, ok := recovery(ts, healAt)
		if !ok {
			t.Errorf("key %s: the limit was not served again within %v of the heal (grants after it: %d)",
				key, s.after, countBetween(ts, healAt, healAt+s.after.Microseconds()))
		} else if rec > s.recoverWithin {
			t.Errorf("key %s: the limit was served again %v after the heal; want within %v", key, rec, s.recoverWithin)
		}
		res.recovery[key] = rec
	}
	checkOutcomes(t, load, s.allow)
	checkJobs(t, load, s.memoryLost)
	if !s.memoryLost {
		checkCounters(t, s.direct, s.prefix, load.started())
	}
	t.Logf("grants/s during the fault %v; limit served again after %v", res.during, res.recovery)
	return res
}

// overLimit says how a window of chaosWindow of Redis time holds more than chaosMax of ts
// (sorted µs), the exact check of TestG1NeverOverLimit; "" when none does.
func overLimit(ts []int64) string {
	for i := range ts {
		if n := countBetween(ts, ts[i], ts[i]+chaosWindow.Microseconds()); n > chaosMax {
			return fmt.Sprintf("%d grants within %v of Redis time from %d µs, limit %d", n, chaosWindow, ts[i], chaosMax)
		}
	}
	return ""
}

// countBetween counts the ts (sorted) in [from, to).
func countBetween(ts []int64, from, to int64) int {
	i, _ := slices.BinarySearch(ts, from)
	j, _ := slices.BinarySearch(ts, to)
	return j - i
}

// recoveryShare is the share of the limit that counts as served: 90% of chaosMax grants in
// one window.
const recoveryShare = 0.9

// recovery is how long after healAt a window of chaosWindow starting at a grant first holds
// recoveryShare of the limit; false when none does.
func recovery(ts []int64, healAt int64) (time.Duration, bool) {
	need := int(recoveryShare * chaosMax)
	i, _ := slices.BinarySearch(ts, healAt)
	for ; i < len(ts); i++ {
		if countBetween(ts, ts[i], ts[i]+chaosWindow.Microseconds()) >= need {
			return time.Duration(ts[i]-healAt) * time.Microsecond, true
		}
	}
	return 0, false
}

// checkOutcomes checks each request's one outcome: fn ran once when it is fn's, never
// otherwise; it came by the request's deadline; and the scenario allows it.
func checkOutcomes(t *testing.T, l *chaosLoad, allow func(outcome) string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	bad := map[string]int{}
	example := map[string]string{}
	note := func(what string, o outcome) {
		if bad[what]++; bad[what] == 1 {
			example[what] = fmt.Sprintf("%s: %v (late %v, at %s)", o.key, o.err, o.late.Round(time.Millisecond), o.at.Format("15:04:05.000"))
		}
	}
	for _, o := range l.outcomes {
		ran := o.kind == "ok" || o.kind == "fn-error"
		switch {
		case o.kind == "other":
			note("an unknown error", o)
		case ran && o.runs != 1, !ran && o.runs != 0:
			note(fmt.Sprintf("outcome %s with fn run %d times", o.kind, o.runs), o)
		case !ran && o.late > lateSlack:
			note(fmt.Sprintf("outcome %s after the deadline", o.kind), o)
		}
		if allow != nil {
			if why := allow(o); why != "" {
				note(why, o)
			}
		}
	}
	for what, n := range bad {
		t.Errorf("%d requests: %s; e.g. %s", n, what, example[what])
	}
}

// checkJobs checks that every durable job enqueued ran and its result reached its Wait. With
// lost, a job lost with Redis's memory may end with ErrJobNotFound or at its Wait's ctx.
func checkJobs(t *testing.T, l *chaosLoad, lost bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	failed, gone := 0, 0
	for _, j := range l.jobs {
		if lost && (errors.Is(j.err, ErrJobNotFound) || errors.Is(j.err, context.DeadlineExceeded)) {
			gone++
			continue
		}
		if j.err != nil || j.got != j.payload+"-done" || l.runs[j.payload] == 0 {
			if failed++; failed <= 3 {
				t.Errorf("job %s: Wait = %q, %v; handler runs %d", j.payload, j.got, j.err, l.runs[j.payload])
			}
		}
	}
	if gone > 0 {
		t.Logf("%d of %d jobs lost with Redis's memory", gone, len(l.jobs))
	}
	if failed > 3 {
		t.Errorf("%d jobs in all without their result", failed)
	}
	if len(l.jobs) == 0 {
		t.Error("no durable job was enqueued")
	}
}

// checkCounters checks, on a fresh node, that every key's counters add up once the nodes are
// closed: each grant (on arrival or from the line) started once or was given back; nothing
// waits and no grant is left unclaimed.
//
// started holds, by key, how many fns and handlers the load saw start: when Succeeded+Failed
// plus the runs cut off by a lapsed lease is below it, counts were lost on their way to Redis;
// when Admitted+Granted is above Succeeded+Failed+Refunded with none lost, a grant was neither
// run nor given back.
func checkCounters(t *testing.T, rdb redis.UniversalClient, prefix string, started map[string]int64) {
	t.Helper()
	c, err := New(Config{Redis: rdb, Prefix: prefix, Default: Limit{Max: chaosMax, Window: chaosWindow}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, key := range append(slices.Clone(chaosKeys), chaosJobKey) {
		// A grant made for a node in its last moments waits for its claim timeout before
		// any processor gives it back, as in a live cluster: let this node's processor do so.
		for end := time.Now().Add(3 * c.cfg.ClaimTimeout); status(t, c, key).Unclaimed > 0 && time.Now().Before(end); {
			c.node.Recheck(key)
			time.Sleep(100 * time.Millisecond) // the sweep's own pace, not a condition of the test
		}
		st := status(t, c, key)
		n := st.Counters
		granted, ended := n.Admitted+n.Granted, n.Succeeded+n.Failed+n.Refunded+n.Reclaimed
		// A handler's run that returned after its lease lapsed was started, and was counted
		// as a lapsed lease, not as succeeded or failed (the fence refused its result).
		counted := n.Succeeded+n.Failed <= started[key] && started[key] <= n.Succeeded+n.Failed+n.Reclaimed
		if granted != ended || !counted || st.Queued != 0 || st.Unclaimed != 0 {
			t.Errorf("key %s: %d granted (%d on arrival, %d from the line), %d started or given back "+
				"(%d succeeded, %d failed, %d refunded, %d leases lapsed); the load saw %d start; %d waiting, %d unclaimed",
				key, granted, n.Admitted, n.Granted, ended, n.Succeeded, n.Failed, n.Refunded, n.Reclaimed, started[key],
				st.Queued, st.Unclaimed)
		}
	}
}

// noUnavailable is an allow of scenarios whose fault must not make Redis look down.
func noUnavailable(o outcome) string {
	if o.kind == "unavailable" {
		return "ErrUnavailable though Redis is up"
	}
	return ""
}

// patientServed is an allow of scenarios in which a patient caller (High or better, or Normal;
// seconds of deadline; no cancel) must be served: fn's value or error, nothing else.
func patientServed(o outcome) string {
	if o.patient && o.kind != "ok" && o.kind != "fn-error" {
		return "a patient caller not served: " + o.kind
	}
	return ""
}

// either combines allows: the first reason given.
func either(allows ...func(outcome) string) func(outcome) string {
	return func(o outcome) string {
		for _, a := range allows {
			if why := a(o); why != "" {
				return why
			}
		}
		return ""
	}
}
