package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/lua"
	"github.com/rateltd/rateltd/queue"
)

var instructionsFlag = flag.Bool("instructions", false, "TestInstructions: count Redis's instructions per call under callgrind (else a brief check)")

// TestInstructions counts the instructions redis-server runs for one call of each script, as a
// script (EVALSHA) and as a function (FCALL), and of each peer's call, under valgrind's
// callgrind: a count that does not move with the load of the machine, unlike Redis's CPU time
// (the same binary and calls give the same count within 1 %); with them, a ticket's share of
// coalesced admits (admit_many) of one key and of several, the calls behind a
// grant from the line, a durable job's way from enqueue to the end of its run (one and sixteen
// at a time, per job) and two floors of a call shaped as admit's (stepCases). Each case starts
// its own redis-server under callgrind, makes its calls from this process (no background
// traffic), and counts the instructions of 1,200 calls less those of 200, divided by 1,000.
// Needs valgrind; about two minutes:
//
//	cd bench && go test -run '^TestInstructions$' -count=1 -instructions
//
// Without -instructions, where valgrind is installed, it counts 60 calls less 10 and checks
// only that each script costs Redis fewer instructions as a function than as a script.
func TestInstructions(t *testing.T) {
	for _, tool := range []string{"valgrind", "callgrind_control", "redis-server"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s: %v", tool, err)
		}
	}
	few, many := 10, 60
	if *instructionsFlag {
		few, many = 200, 1200
	}
	var rows []string
	peer, script := map[string]float64{}, map[string]float64{}
	for _, c := range append(instructionCases(), stepCases()...) {
		n := countInstructions(t, c, few, many)
		ratio := ""
		switch {
		case c.peer:
			peer[c.group] = n
		case strings.HasSuffix(c.name, ", script"):
			script[c.group] = n
		case strings.HasSuffix(c.name, ", function") && script[c.group] > 0 && n >= script[c.group]:
			t.Errorf("%s: %.0f instructions a call as a function, %.0f as a script", c.group, n, script[c.group])
		}
		if p := peer[c.group]; p > 0 && !c.peer {
			ratio = fmt.Sprintf("%.2f", n/p)
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %.0fk | %s |", c.group, c.name, n/1000, ratio))
	}
	table := fmt.Sprintf("\n| call | side | Redis instructions per call | ÷ peer |\n|---|---|---|---|\n%s\n", strings.Join(rows, "\n"))
	if *instructionsFlag {
		fmt.Print(table)
	} else {
		t.Log(table)
	}
}

// instructionCase is one kind of call: setup runs once on a fresh server, call i makes the
// i-th call. The peer of a group comes first in it.
type instructionCase struct {
	group, name string
	peer        bool
	per         int // what one call counts for (0: one); the count is per unit
	setup       func(ctx context.Context, rdb *redis.Client) error
	call        func(ctx context.Context, rdb *redis.Client, i int) error
}

// The KEYS of the per-key scripts for key k (queue's keyspace.perKey), and with the jobs' names
// (keyspace.withJobs).
var (
	instrKeys = []string{"rateltd:{k}:w", "rateltd:{k}:q:0", "rateltd:{k}:q:1", "rateltd:{k}:q:2", "rateltd:{k}:q:3",
		"rateltd:{k}:granted", "rateltd:{k}:paused", "rateltd:{k}:stats", "rateltd:{k}:dlq", "rateltd:{k}:evicted", "rateltd:{k}:fair"}
	instrJobKeys = append(append([]string{}, instrKeys...), "rateltd:{k}:jobs", "rateltd:{k}:lease", "rateltd:{k}:results",
		"rateltd:{k}:rexp", "rateltd:{k}:waited", "rateltd:{k}:local", "rateltd:{k}:sched")
)

// instrAdmit is the i-th admit's ARGV: a request on a sliding window far from its limit
// (granted at once).
func instrAdmit(i int) []any {
	return []any{0, 50_000_000, 1_000_000, 0, 60_000, 0, strings.Repeat("t", 70), fmt.Sprintf("id%014d", i), 1,
		time.Now().UnixMicro() + 30_000_000, 1000, 0, 0}
}

// instrAdmitLean is the i-th admit's ARGV sent lean (a lone admit of a key that is not busy):
// the limit's six, the ticket's id and cost.
func instrAdmitLean(i int) []any {
	return []any{0, 50_000_000, 1_000_000, 0, 60_000, 0, fmt.Sprintf("id%014d", i), 1}
}

func instructionCases() []instructionCase {
	keys, jobKeys, admit := instrKeys, instrJobKeys, instrAdmit
	// A durable job of 100 bytes, queued (no worker).
	node := uuid.New()
	enqueue := func(i int) []any {
		id := uuid.New()
		now := time.Now().UnixMicro()
		tk := &queue.Ticket{ID: id[:], Key: "k", Priority: 1, Enqueued: now, Deadline: now + 600_000_000, Owner: node[:], Handler: "echo"}
		raw, _ := tk.Encode()
		return []any{0, 50_000_000, 1_000_000, 0, 60_000, 0, raw, id[:], 1, tk.Deadline, 10_000_000, 0, 0,
			strings.Repeat("r", 140), 0, 1}
	}
	load, fcall := loadScript, fcallOf
	evalsha := func(s *redis.Script, ks []string, argv func(int) []any) func(context.Context, *redis.Client, int) error {
		return func(ctx context.Context, rdb *redis.Client, i int) error {
			return s.EvalSha(ctx, rdb, ks, argv(i)...).Err()
		}
	}
	payload := make([]byte, payloadSize)
	var limiter *redis_rate.Limiter
	var client *asynq.Client
	return []instructionCase{
		{group: "request granted at once", name: "redis_rate Allow", peer: true,
			setup: func(_ context.Context, rdb *redis.Client) error {
				limiter = redis_rate.NewLimiter(rdb)
				return nil
			},
			call: func(ctx context.Context, _ *redis.Client, _ int) error {
				_, err := limiter.Allow(ctx, "k", redis_rate.PerSecond(50_000_000))
				return err
			}},
		{group: "request granted at once", name: "rateltd admit, script", setup: load(lua.Admit), call: evalsha(lua.Admit, keys, admit)},
		{group: "request granted at once", name: "rateltd admit, function", setup: load(lua.Admit), call: fcall(lua.Admit, keys, admit)},
		{group: "request granted at once", name: "rateltd admit, function, lean", setup: load(lua.Admit),
			call: func(ctx context.Context, rdb *redis.Client, i int) error {
				name, _, _ := lua.Function(lua.Admit.Hash())
				if v, err := rdb.FCall(ctx, name, keys[:7], instrAdmitLean(i)...).Slice(); err != nil || v[0] != int64(1) {
					return fmt.Errorf("lean admit: %v, %v; want granted", v, err)
				}
				return nil
			}},
		admitMany(1, 8, false), admitMany(8, 1, false), admitMany(1, 8, true), admitMany(8, 1, true),
		{group: "durable job enqueued", name: "asynq Enqueue", peer: true,
			setup: func(_ context.Context, rdb *redis.Client) error {
				client = asynq.NewClientFromRedisClient(rdb)
				return nil
			},
			call: func(ctx context.Context, _ *redis.Client, _ int) error {
				_, err := client.EnqueueContext(ctx, asynq.NewTask("echo", payload))
				return err
			}},
		{group: "durable job enqueued", name: "rateltd enqueue, script", setup: load(lua.Enqueue), call: evalsha(lua.Enqueue, jobKeys, enqueue)},
		{group: "durable job enqueued", name: "rateltd enqueue, function", setup: load(lua.Enqueue), call: fcall(lua.Enqueue, jobKeys, enqueue)},
	}
}

// admitMany is one admit_many call (as concurrent requests send them) of n tickets on each of
// keys keys, every one granted at once; the keys walk over 1,000, as the bench's requests over
// many keys do. Counted per ticket. Lean: each key sent lean (seven KEYS, each ticket its id
// and cost), as a flight alone in the air sends a key that is not busy.
func admitMany(keys, n int, lean bool) instructionCase {
	name, _, _ := lua.Function(lua.AdmitMany.Hash())
	what := fmt.Sprintf("rateltd admit_many, one key, %d tickets, a ticket", n)
	if keys > 1 {
		what = fmt.Sprintf("rateltd admit_many, %d keys of %d ticket each, a ticket", keys, n)
	}
	if lean {
		what += ", lean"
	}
	return instructionCase{group: "request granted at once", name: what, per: keys * n, setup: loadScript(lua.AdmitMany),
		call: func(ctx context.Context, rdb *redis.Client, i int) error {
			// ARGV: one set of settings (the limit, max queue, overflow, head, KEYS a key), then
			// per key its set, n and n tickets (raw, id, priority, deadline, cost).
			args := []any{1, 0, 50_000_000, 1_000_000, 0, 60_000, 0, 1000, 0, 0, len(instrKeys)}
			ks := make([]string, 0, keys*len(instrKeys))
			deadline := time.Now().UnixMicro() + 30_000_000
			for k := range keys {
				tag := "{k" + strconv.Itoa((i*keys+k)%1000) + "}"
				for j, s := range instrKeys {
					if !lean || j < 7 { // lean: the names to paused
						ks = append(ks, strings.Replace(s, "{k}", tag, 1))
					}
				}
				if lean {
					args = append(args, 1, -n)
					for j := range n {
						args = append(args, fmt.Sprintf("id%07d%07d", i, k*n+j), 1)
					}
					continue
				}
				args = append(args, 1, n)
				for j := range n {
					args = append(args, strings.Repeat("t", 70), fmt.Sprintf("id%07d%07d", i, k*n+j), 1, deadline, 1)
				}
			}
			v, err := rdb.FCall(ctx, name, ks, args...).Slice()
			if err != nil {
				return err
			}
			for _, e := range v {
				if r, _ := e.([]any); len(r) < 2 || r[1] != int64(n) {
					return fmt.Errorf("admit_many: a key's reply %v; want all %d granted", e, n)
				}
			}
			return nil
		}}
}

// loadScript loads s as a script and as a function library.
func loadScript(s *redis.Script) func(context.Context, *redis.Client) error {
	return func(ctx context.Context, rdb *redis.Client) error {
		_, lib, _ := lua.Function(s.Hash())
		return errors.Join(s.Load(ctx, rdb).Err(), rdb.FunctionLoad(ctx, lib).Err())
	}
}

// fcallOf calls s's function with KEYS ks and the ARGV argv gives for each call.
func fcallOf(s *redis.Script, ks []string, argv func(int) []any) func(context.Context, *redis.Client, int) error {
	name, _, _ := lua.Function(s.Hash())
	return func(ctx context.Context, rdb *redis.Client, i int) error {
		return rdb.FCall(ctx, name, ks, argv(i)...).Err()
	}
}

// stepCases are the calls behind a grant from the line — the admit that queues the request
// and the grant step that grants it —, a durable job's run (jobRun), and two floors of any
// call shaped as admit's: a
// function that returns at once, and one that makes the fast path's six Redis calls and
// nothing else.
func stepCases() []instructionCase {
	owner := uuid.New()
	queued := func(i int) []any {
		a := instrAdmit(i)
		a[5], a[10] = -1, 1_000_000 // paused for good (ARGV 6): queued, whatever the window; a long line allowed
		return a
	}
	bare := func(name, body string) instructionCase {
		lib := fmt.Sprintf("#!lua name=%s\nredis.register_function('%s', function(KEYS, ARGV) %s end)", name, name, body)
		return instructionCase{group: "floor of admit's call", name: name,
			setup: func(ctx context.Context, rdb *redis.Client) error { return rdb.FunctionLoad(ctx, lib).Err() },
			call: func(ctx context.Context, rdb *redis.Client, i int) error {
				return rdb.FCall(ctx, name, instrKeys, instrAdmit(i)...).Err()
			}}
	}
	grantName, _, _ := lua.Function(lua.Grant.Hash())
	return []instructionCase{
		{group: "request queued", name: "rateltd admit, function", setup: loadScript(lua.Admit), call: fcallOf(lua.Admit, instrKeys, queued)},
		{group: "grant step granting one request", name: "rateltd grant, function (with the RPUSH that queues it, ~6k)", setup: loadScript(lua.Grant),
			call: func(ctx context.Context, rdb *redis.Client, _ int) error {
				id := uuid.New()
				now := time.Now().UnixMicro()
				raw, err := (&queue.Ticket{ID: id[:], Key: "k", Priority: 1, Enqueued: now, Deadline: now + 600_000_000, Owner: owner[:]}).Encode()
				if err != nil {
					return err
				}
				if err := rdb.RPush(ctx, instrKeys[2], raw).Err(); err != nil {
					return err
				}
				// ARGV: the limit (1-6), this node, batch, claim timeout, hold, lease, free workers, leases lost, no dead node.
				return rdb.FCall(ctx, grantName, instrJobKeys, 0, 50_000_000, 1_000_000, 0, 60_000, 0, owner[:], 100,
					5_000_000, 1_000_000, 30_000_000, 0, 3, 0).Err()
			}},
		atLimit(),
		jobRun(1), jobRun(16),
		bare("returns_at_once", "return 1"),
		bare("six_calls", "local t = redis.call('TIME'); redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t[1]); "+
			"local n = redis.call('ZCARD', KEYS[1]); redis.call('EXISTS', KEYS[7], KEYS[2], KEYS[3], KEYS[4], KEYS[5]); "+
			"redis.call('ZADD', KEYS[1], t[1], ARGV[8]); redis.call('PEXPIRE', KEYS[1], 60000); return {1, t[1], n, 0, 0, '', 0, 1}"),
	}
}

// atLimit is a grant from the line of a key at its limit, as slot → start's keys (part slot of
// TestCompare) are: two requests wait; the grant step grants the first, which fills the window,
// and works out when the second may go; the caller's next request is admitted and queued
// behind a full window. The window is emptied first (a DEL, ~3k), standing in for the time that
// frees it, so that every call takes the same path.
func atLimit() instructionCase {
	node := uuid.New()
	admit, _, _ := lua.Function(lua.Admit.Hash())
	grant, _, _ := lua.Function(lua.Grant.Hash())
	limit := []any{0, 1, 3_600_000_000, 0, 60_000, 0} // a sliding log, one an hour
	const day = 86_400_000_000                        // the requests' deadline, µs from now: beyond their slots
	queue1 := func(ctx context.Context, rdb *redis.Client) error {
		id := uuid.New()
		now := time.Now().UnixMicro()
		raw, err := (&queue.Ticket{ID: id[:], Key: "k", Priority: 1, Enqueued: now, Deadline: now + day, Owner: node[:]}).Encode()
		if err != nil {
			return err
		}
		// ARGV 7-13: the ticket, its id, priority, deadline, max queue, overflow, head.
		v, err := rdb.FCall(ctx, admit, instrKeys, append(slices.Clone(limit), raw, id[:], 1, now+day, 1000, 0, 0)...).Slice()
		if err != nil {
			return err
		}
		if code, _ := v[0].(int64); code != 2 {
			return fmt.Errorf("admit: code %d, want 2 (queued)", code)
		}
		return nil
	}
	return instructionCase{group: "grant of a key at its limit", name: "rateltd grant step and the next request's queued admit, functions",
		setup: func(ctx context.Context, rdb *redis.Client) error {
			err := errors.Join(loadScript(lua.Admit)(ctx, rdb), loadScript(lua.Grant)(ctx, rdb),
				rdb.ZAdd(ctx, instrKeys[0], redis.Z{Score: float64(time.Now().UnixMicro()), Member: "full"}).Err())
			return errors.Join(err, queue1(ctx, rdb), queue1(ctx, rdb))
		},
		call: func(ctx context.Context, rdb *redis.Client, _ int) error {
			if err := rdb.Del(ctx, instrKeys[0]).Err(); err != nil {
				return err
			}
			// ARGV: the limit (1-6), this node, batch, claim timeout, hold, lease, free workers, leases lost, no dead node.
			v, err := rdb.FCall(ctx, grant, instrJobKeys, append(slices.Clone(limit), node[:], 100, 5_000_000, 1_000_000, 30_000_000, 0, 3, 0)...).Slice()
			if err != nil {
				return err
			}
			if mine, _ := v[3].([]any); len(mine) != 1 {
				return fmt.Errorf("grant step granted %d, want 1", len(mine))
			}
			if now, next := v[1].(int64), v[2].(int64); next-now < 3_000_000_000 {
				return fmt.Errorf("grant step: next visit %d µs on, want an hour", next-now)
			}
			return queue1(ctx, rdb)
		}}
}

// jobRun is a durable job's way through Redis, n jobs at a time: n enqueued (enqueue, or
// enqueue_many as concurrent Enqueue calls go), granted to this node by one grant step, and
// their runs ended (job_done, or job_done_many as concurrent ends go). Counted per job.
func jobRun(n int) instructionCase {
	node := uuid.New()
	enqueue, _, _ := lua.Function(lua.Enqueue.Hash())
	enqueueMany, _, _ := lua.Function(lua.EnqueueMany.Hash())
	grant, _, _ := lua.Function(lua.Grant.Hash())
	done, _, _ := lua.Function(lua.JobDone.Hash())
	doneMany, _, _ := lua.Function(lua.JobDoneMany.Hash())
	limit := []any{0, 50_000_000, 1_000_000, 0, 60_000, 0}
	name := "rateltd enqueue, grant, job_done"
	if n > 1 {
		name = "rateltd enqueue_many, grant, job_done_many"
	}
	return instructionCase{group: fmt.Sprintf("durable job run, %d at a time", n), name: name, per: n,
		setup: func(ctx context.Context, rdb *redis.Client) error {
			return errors.Join(loadScript(lua.Enqueue)(ctx, rdb), loadScript(lua.EnqueueMany)(ctx, rdb),
				loadScript(lua.Grant)(ctx, rdb), loadScript(lua.JobDone)(ctx, rdb), loadScript(lua.JobDoneMany)(ctx, rdb))
		},
		call: func(ctx context.Context, rdb *redis.Client, _ int) error {
			now := time.Now().UnixMicro()
			rec, err := (&queue.Job{Key: "k", Handler: "echo", Payload: make([]byte, payloadSize), Priority: 1,
				Wait: 600_000_000, Owner: node[:], ResultTTL: 60_000, Enqueued: now}).Encode()
			if err != nil {
				return err
			}
			ids := make([][]byte, n)
			many := append(slices.Clone(limit), 1, 10_000_000, 0, 1, n)
			for i := range ids {
				id := uuid.New()
				ids[i] = id[:]
				raw, err := (&queue.Ticket{ID: id[:], Key: "k", Priority: 1, Enqueued: now, Deadline: now + 600_000_000,
					Owner: node[:], Handler: "echo"}).Encode()
				if err != nil {
					return err
				}
				if n == 1 {
					a := append(slices.Clone(limit), raw, id[:], 1, now+600_000_000, 10_000_000, 0, 0, rec, 0, 1)
					if err := rdb.FCall(ctx, enqueue, instrJobKeys, a...).Err(); err != nil {
						return err
					}
				}
				many = append(many, raw, id[:], rec, now+600_000_000)
			}
			if n > 1 {
				if err := rdb.FCall(ctx, enqueueMany, instrJobKeys, append(many, 0, 1)...).Err(); err != nil {
					return err
				}
			}
			// ARGV: the limit (1-6), this node, batch, claim timeout, hold, lease, free workers, leases
			// lost, no dead node, the handler run here.
			g := append(slices.Clone(limit), node[:], n, 5_000_000, 1_000_000, 30_000_000, n, 3, 0, "+echo")
			v, err := rdb.FCall(ctx, grant, instrJobKeys, g...).Slice()
			if err != nil {
				return err
			}
			if jobs, _ := v[5].([]any); len(jobs) != 2*n {
				return fmt.Errorf("grant step granted %d jobs, want %d", len(jobs)/2, n)
			}
			if n == 1 {
				return rdb.FCall(ctx, done, instrJobKeys, append(slices.Clone(limit), ids[0], 1, 1, "ok", 0)...).Err()
			}
			ends := append(slices.Clone(limit), n)
			for _, id := range ids {
				ends = append(ends, id, 1, 1, "ok", 0)
			}
			return rdb.FCall(ctx, doneMany, instrJobKeys, ends...).Err()
		}}
}

// countInstructions runs c on a fresh redis-server under callgrind and returns the server's
// instructions per call: those of many calls less those of few, over many - few.
func countInstructions(t *testing.T, c instructionCase, few, many int) float64 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	srv := exec.Command("valgrind", "--tool=callgrind", "--callgrind-out-file="+filepath.Join(dir, "cg.%p"),
		"redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	defer rdb.Close()
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server under valgrind did not listen within a minute")
		}
	}
	if err := c.setup(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	next := 0
	calls := func(n int) {
		for range n {
			if err := c.call(ctx, rdb, next); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			next++
		}
	}
	calls(50) // warm: the first calls load what the later ones find
	counted := func(n int) float64 {
		control(t, srv.Process.Pid, "-z")
		calls(n)
		control(t, srv.Process.Pid, "-d")
		return dumped(t, dir)
	}
	a, b := counted(few), counted(many)
	return (b - a) / float64(many-few) / float64(max(1, c.per))
}

// control runs callgrind_control with flag (-z zero the counts, -d dump them) on pid.
func control(t *testing.T, pid int, flag string) {
	t.Helper()
	if out, err := exec.Command("callgrind_control", flag, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		t.Fatalf("callgrind_control %s: %v: %s", flag, err, out)
	}
}

// dumped returns the instructions of the latest dump in dir (the part numbered highest, its
// "summary:" line), waiting for it to be written.
func dumped(t *testing.T, dir string) float64 {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(dir, "cg.*.*"))
		latest, part := "", -1
		for _, f := range files {
			if n, err := strconv.Atoi(f[strings.LastIndexByte(f, '.')+1:]); err == nil && n > part {
				latest, part = f, n
			}
		}
		if latest == "" || part <= dumps[dir] {
			continue
		}
		b, err := os.ReadFile(latest)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "summary: "); ok {
				n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					t.Fatal(err)
				}
				dumps[dir] = part
				return n
			}
		}
	}
	t.Fatalf("no callgrind dump in %s", dir)
	return 0
}

// dumps holds the part of the last dump read, by directory (one test goroutine).
var dumps = map[string]int{}
