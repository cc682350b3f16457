package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/lua"
)

// Redis is the Backend shared by every process that uses one Redis or Redis Cluster. Every
// per-key step is one script on one slot. It never closes the client it was given.
// Safe for concurrent use.
type Redis struct {
	rdb redis.UniversalClient
	ks  keyspace
	// admit, enqueues and finishes send concurrent admits, enqueues of durable jobs and ends
	// of their runs together (batch.go).
	admit    batcher[callArgs, AdmitReply]
	enqueues batcher[callArgs, AdmitReply]
	finishes batcher[finishArgs, finishReply]
	params   paramCache
	// cluster is rdb when it is a cluster client; reloaded holds when (Unix ns) its slot map
	// was last reloaded after a failure. Written and read by every caller of evalPipelined.
	cluster  *redis.ClusterClient
	reloaded atomic.Int64
	// keysApart is set once a single server refused one script call over keys of several
	// slots (cluster mode behind a plain client): admits of several keys then go apart.
	keysApart atomic.Bool
	// down is where Redis failed an admission lately (per hash slot on a cluster).
	down circuit
	// functions is set once Redis (every master of a cluster) has loaded every script as a
	// function library: scripts then go as FCALL (script.go). reloading guards the reload of
	// the libraries Redis lost.
	functions atomic.Bool
	reloading sync.Mutex
	// wakes is what the listeners heard of the numbered wake-ups (wakes.go).
	wakes wakeWatch
}

// paramCache keeps the script arguments of recently used Params boxed, the six that every
// per-key script starts with and admit's max queue, overflow and head: the fast path would
// otherwise box them on every request. Bounded: it starts afresh when full.
type paramCache struct {
	mu sync.Mutex
	m  map[Params][]any // guarded by mu
}

func (c *paramCache) args(p Params) []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[p]
	if !ok {
		if c.m == nil || len(c.m) >= nameCacheSize {
			c.m = map[Params][]any{}
		}
		head := 0
		if p.Head {
			head = 1
		}
		a = args(p, p.Limit.MaxQueue, int(p.Limit.Overflow), head)
		c.m[p] = a
	}
	return a
}

var _ Backend = (*Redis)(nil)

// NewRedis returns a Redis backend whose keys start with prefix and whose index of active
// keys is spread over shards keys.
func NewRedis(rdb redis.UniversalClient, prefix string, shards int) *Redis {
	r := &Redis{rdb: rdb, ks: keyspace{prefix: prefix, shards: shards, names: &nameCache{m: map[nameCacheKey]perKeyNames{}}}}
	r.admit = batcher[callArgs, AdmitReply]{one: r.admitLone, all: r.admitAll, solo: r.admitSolo, undo: r.undoAdmit,
		most: admitFlights, crowd: admitCrowd}
	r.enqueues = batcher[callArgs, AdmitReply]{one: r.enqueueOne, all: r.enqueueAll, most: enqueueFlights}
	r.finishes = batcher[finishArgs, finishReply]{one: r.finishOne, all: r.finishAll}
	r.cluster, _ = rdb.(*redis.ClusterClient)
	r.down = newCircuit(r.cluster != nil)
	return r
}

// LoadScripts loads every script into Redis (every master of a cluster) as a function library,
// so that scripts go as FCALL; where Redis refuses a library (a server without functions, or
// an ACL that does not allow FUNCTION LOAD) it loads them as scripts, for EVALSHA. Needed for no
// correctness: a script or function Redis lost is sent again as EVAL by the command that met
// its loss (evalPipelined), which also has the lost library loaded again.
func (r *Redis) LoadScripts(ctx context.Context) error {
	err := r.loadLibraries(ctx, allScripts, true)
	if err == nil {
		r.functions.Store(true)
		return nil
	}
	var reply redis.Error
	if !errors.Is(err, errNoLibraries) && (!errors.As(err, &reply) || Outage(err)) {
		return fmt.Errorf("queue: load scripts: %w", err)
	}
	for _, s := range lua.All {
		if err := s.Load(ctx, r.rdb).Err(); err != nil {
			return fmt.Errorf("queue: load scripts: %w", err)
		}
	}
	return nil
}

// allScripts are the SHA1s of lua.All.
var allScripts = func() []string {
	out := make([]string, len(lua.All))
	for i, s := range lua.All {
		out[i] = s.Hash()
	}
	return out
}()

// anyParams are the Params of scripts that read no limit (reset, job_wait): any valid ones do.
var anyParams = Params{Limit: config.DefaultLimit, StatsTTL: time.Second}

// args returns the six ARGV every per-key script starts with, followed by extra.
func args(p Params, extra ...any) []any {
	l := p.Limit
	a := make([]any, 0, 6+len(extra))
	a = append(a, rateSpec(p), l.Max, l.Window.Microseconds(), l.Burst,
		max(p.StatsTTL.Milliseconds(), 1000), p.ExtPause)
	return append(a, extra...)
}

// rateSpec is ARGV 1 of the per-key scripts for p's limit (see limits.lua): the algorithm's
// number, or for a limit whose main rate counts units, that has further rates, a concurrency
// cap, is a shadow limit or bounds each tenant's waiting (config.Limit.Complex), "algorithm,units,
// concurrency,slot lease µs,shadow,max queue per tenant" and ";max,window µs,burst,units" for each further rate.
func rateSpec(p Params) any {
	l := p.Limit
	if !l.Complex() {
		return int(l.Algorithm)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d,%d,%d,%d,%d,%d", int(l.Algorithm), b2i(l.Units), l.Concurrency, p.slotLease().Microseconds(), b2i(l.Shadow), l.MaxQueuePerTenant)
	for _, r := range l.InUse() {
		fmt.Fprintf(&b, ";%d,%d,%d,%d", r.Max, r.Window.Microseconds(), r.Burst, b2i(r.Units))
	}
	return b.String()
}

func (r *Redis) run(ctx context.Context, s *redis.Script, key string, p Params, extra ...any) (any, error) {
	return r.eval(ctx, s, r.ks.perKeyArgs(key, p.Limit), args(p, extra...)...).Result()
}

// Admit fails at once, with ErrUnavailable, for circuitWindow after Redis failed an admission
// of a key of the same slot (any key, unless on a cluster): while Redis is out, requests go
// straight to their fail mode rather than each waiting for Redis to fail them. Only admissions
// are cut short: the steps that clean up after them (cancel, refund, the grant steps) must
// reach Redis as soon as it is back, and no caller waits for them.
func (r *Redis) Admit(ctx context.Context, p Params, t *Ticket, raw []byte) (AdmitReply, error) {
	if r.down.open(t.Key) {
		return AdmitReply{}, fmt.Errorf("queue: admit %q: %w", t.Key, errCircuitOpen)
	}
	start := time.Now()
	rep, err := r.admit.do(ctx, callArgs{p: p, t: t, raw: raw})
	r.down.record(t.Key, err, time.Since(start))
	if err != nil {
		return AdmitReply{}, fmt.Errorf("queue: admit %q: %w", t.Key, err)
	}
	return rep, nil
}

func parseAdmit(v any) (AdmitReply, error) {
	s, err := replySlice(v, 7)
	if err != nil {
		return AdmitReply{}, err
	}
	var n [5]int64 // not replyInts: every request's reply comes here, and this allocates nothing
	for i := range n {
		if n[i], err = replyInt(s[i]); err != nil {
			return AdmitReply{}, fmt.Errorf("element %d: %w", i, err)
		}
	}
	var reset int64
	suffix, isStr := s[6].(string) // queued: what follows the ticket in its entry (admit.lua)
	if !isStr {
		if reset, err = replyInt(s[6]); err != nil {
			return AdmitReply{}, fmt.Errorf("element 6: %w", err)
		}
	}
	ev, err := replyBytes(s[5])
	if err != nil {
		return AdmitReply{}, err
	}
	if n[0] < int64(Granted) || n[0] > int64(Scheduled) {
		return AdmitReply{}, fmt.Errorf("unknown outcome %d", n[0])
	}
	rep := AdmitReply{Outcome: Outcome(n[0]), Now: n[1], Remaining: int(n[2]), Earliest: n[3], LineBefore: int(n[4]),
		ResetAfter: reset, Which: 1}
	if rep.Outcome == Queued && suffix != "" {
		rep.LineSuffix = []byte(suffix)
	}
	if len(s) > 7 {
		w, err := replyInt(s[7])
		if err != nil {
			return AdmitReply{}, fmt.Errorf("element 7: %w", err)
		}
		rep.Which = int(w)
	}
	if len(s) > 9 { // a shadow grant's verdict and would-be wait
		v, err1 := replyInt(s[8])
		w, err2 := replyInt(s[9])
		if err1 != nil || err2 != nil || v < int64(ShadowAllowed) || v > int64(ShadowRefused) {
			return AdmitReply{}, fmt.Errorf("elements 8-9: shadow verdict %v %v", s[8], s[9])
		}
		rep.Shadow, rep.ShadowWait = ShadowVerdict(v), w
	}
	if len(ev) > 0 {
		rep.Evicted = ev
	}
	return rep, nil
}

func (r *Redis) Grant(ctx context.Context, keys []string, ps []Params, g GrantArgs) ([]GrantReply, []error) {
	extra := []any{g.Node, g.Batch, g.ClaimTimeout.Microseconds(), g.Hold.Microseconds(), g.Lease.Microseconds(), 0,
		g.MaxLost, len(g.Dead)}
	for _, d := range g.Dead {
		extra = append(extra, d)
	}
	for _, h := range g.Mine {
		extra = append(extra, "+"+h)
	}
	for _, h := range g.Others {
		extra = append(extra, "="+h)
	}
	const slotsArg = 6 + 5 // ARGV 12
	reps := make([]GrantReply, len(keys))
	errs := make([]error, len(keys))
	cmds := make([]*redis.Cmd, len(keys))
	for i, key := range keys {
		a := args(ps[i], extra...)
		if i < len(g.Slots) {
			a[slotsArg] = g.Slots[i]
		}
		cmds[i] = evalSHA(ctx, lua.Grant, r.ks.withJobsArgs(key, ps[i].Limit), a...)
	}
	r.evalPipelined(ctx, cmds)
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if err == nil {
			reps[i], err = parseGrant(v)
		}
		if err != nil {
			errs[i] = fmt.Errorf("queue: grant %q: %w", keys[i], err)
		}
	}
	return reps, errs
}

func parseGrant(v any) (GrantReply, error) {
	s, err := replySlice(v, 8)
	if err != nil {
		return GrantReply{}, err
	}
	n, err := replyInts(s[:3])
	if err != nil {
		return GrantReply{}, err
	}
	rep := GrantReply{Paused: n[0] == 1, Now: n[1], Next: n[2]}
	if rep.Local, err = replyByteList(s[3]); err != nil {
		return GrantReply{}, fmt.Errorf("local: %w", err)
	}
	if rep.Remote, err = replyByteList(s[4]); err != nil {
		return GrantReply{}, fmt.Errorf("remote: %w", err)
	}
	jobs, err := replyByteList(s[5])
	if err != nil {
		return GrantReply{}, fmt.Errorf("jobs: %w", err)
	}
	if len(jobs)%2 != 0 {
		return GrantReply{}, fmt.Errorf("jobs: %d elements, want pairs of id and record", len(jobs))
	}
	for i := 0; i < len(jobs); i += 2 {
		j, err := decodeJob(jobs[i+1])
		if err != nil {
			return GrantReply{}, fmt.Errorf("jobs: %x: %w", jobs[i], err)
		}
		rep.Jobs = append(rep.Jobs, GrantedJob{ID: jobs[i], Job: j})
	}
	busy, err := replyInt(s[6])
	if err != nil {
		return GrantReply{}, fmt.Errorf("busy: %w", err)
	}
	rep.Busy = busy == 1
	if rep.Woken, err = replyByteList(s[7]); err != nil {
		return GrantReply{}, fmt.Errorf("woken: %w", err)
	}
	return rep, nil
}

func (r *Redis) Claimable(ctx context.Context, keys []string) ([]bool, error) {
	cmds := make([]*redis.IntCmd, len(keys))
	pipe := r.rdb.Pipeline()
	for i, key := range keys {
		base := r.ks.base(key) // the two names alone: the poll asks for every key it waits on
		cmds[i] = pipe.Exists(ctx, base+"granted", base+"evicted")
	}
	if len(keys) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("queue: claimable: %w", err)
		}
	}
	out := make([]bool, len(keys))
	for i, c := range cmds {
		out[i] = c.Val() > 0
	}
	return out, nil
}

func (r *Redis) Claim(ctx context.Context, calls []ClaimCall) []ClaimResult {
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		extra := make([]any, 0, 1+2*len(c.Tickets))
		extra = append(extra, keepClaimed.Milliseconds())
		for j, t := range c.Tickets {
			extra = append(extra, t.ID, c.Raws[j])
		}
		cmds[i] = evalSHA(ctx, lua.Claim, r.ks.withJobsArgs(c.Key, c.P.Limit), args(c.P, extra...)...)
	}
	r.evalPipelined(ctx, cmds)
	out := make([]ClaimResult, len(calls))
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if err != nil {
			out[i].Err = fmt.Errorf("queue: claim %q: %w", calls[i].Key, err)
			continue
		}
		if out[i], err = parseClaim(v, len(calls[i].Tickets)); err != nil {
			out[i].Err = fmt.Errorf("queue: claim %q: reply: %w", calls[i].Key, err)
		}
	}
	return out
}

// parseClaim reads claim.lua's reply for n tickets.
func parseClaim(v any, n int) (ClaimResult, error) {
	s, err := replySlice(v, 2*n)
	if err != nil {
		return ClaimResult{}, err
	}
	ns, err := replyInts(s)
	if err != nil {
		return ClaimResult{}, err
	}
	res := ClaimResult{Status: make([]ClaimStatus, n), At: make([]int64, n)}
	for i := range n {
		res.Status[i], res.At[i] = ClaimStatus(ns[2*i]), ns[2*i+1]
	}
	return res, nil
}

func (r *Redis) Cancel(ctx context.Context, p Params, t *Ticket, raw []byte) (CancelOutcome, error) {
	v, err := r.runJobs(ctx, lua.Cancel, t.Key, p, raw, t.ID, t.Priority.Line(), t.LineSuffix)
	if err != nil {
		return 0, fmt.Errorf("queue: cancel %q: %w", t.Key, err)
	}
	n, err := replyInt(v)
	if err != nil || n < int64(Removed) || n > int64(Absent) {
		return 0, fmt.Errorf("queue: cancel %q: reply %v: %v", t.Key, v, err)
	}
	return CancelOutcome(n), nil
}

func (r *Redis) Refund(ctx context.Context, key string, p Params, id []byte, grantedAt int64, local []byte, cost int64) error {
	if local == nil {
		local = []byte{}
	}
	if _, err := r.runJobs(ctx, lua.Refund, key, p, id, grantedAt, local, 0, cost); err != nil {
		return fmt.Errorf("queue: refund %q: %w", key, err)
	}
	return nil
}

func (r *Redis) Check(ctx context.Context, key string, p Params, cost int64) (Decision, error) {
	v, err := r.run(ctx, lua.Check, key, p, cost)
	if err != nil {
		return Decision{}, fmt.Errorf("queue: check %q: %w", key, err)
	}
	s, err := replySlice(v, 4)
	var n []int64
	if err == nil {
		n, err = replyInts(s[:4])
	}
	if err != nil {
		return Decision{}, fmt.Errorf("queue: check %q: reply: %w", key, err)
	}
	d := Decision{Allowed: n[0] == 1, Remaining: int(n[1]), ResetAfter: time.Duration(n[3]) * time.Microsecond,
		Limit: limitOf(p.Limit, 1)}
	if len(s) > 4 {
		if w, err := replyInt(s[4]); err == nil {
			d.Limit = limitOf(p.Limit, int(w))
		}
	}
	if n[2] < 0 {
		d.RetryAfter = -1
	} else {
		d.RetryAfter = time.Duration(n[2]) * time.Microsecond
	}
	return d, nil
}

func (r *Redis) Reset(ctx context.Context, key string) error {
	// The windows of the other algorithms go in the same transaction (one slot). In a
	// transaction NOSCRIPT comes at EXEC, after the DEL ran: only the script is sent again.
	reset := evalSHA(ctx, lua.Reset, r.ks.withJobsArgs(key, anyParams.Limit), args(anyParams)...)
	windows := r.ks.windows(key)
	delArgs := make([]any, 0, 1+len(windows))
	delArgs = append(delArgs, "del")
	for _, w := range windows {
		delArgs = append(delArgs, w)
	}
	del := redis.NewIntCmd(ctx, delArgs...)
	r.asFunctions([]*redis.Cmd{reset})
	_, _ = r.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		_ = pipe.Process(ctx, reset)
		_ = pipe.Process(ctx, del)
		return nil
	})
	r.resendLost(ctx, []*redis.Cmd{reset})
	if err := errors.Join(reset.Err(), del.Err()); err != nil {
		return fmt.Errorf("queue: reset %q: %w", key, err)
	}
	return nil
}

func (r *Redis) PauseKey(ctx context.Context, key string, until int64) error {
	k := r.ks.plain(key)[kPaused]
	var err error
	if until == PausedForever {
		err = r.rdb.Set(ctx, k, PausedForever, 0).Err()
	} else {
		// One command: the pause and its end are set together. The scripts compare the value
		// with server time, so the key may outlive its end by the rounding to ms.
		err = r.rdb.Do(ctx, "set", k, until, "pxat", until/1000+1).Err()
	}
	if err != nil {
		return fmt.Errorf("queue: pause %q: %w", key, err)
	}
	return nil
}

func (r *Redis) ExtendPause(ctx context.Context, key string, until int64) error {
	k := r.ks.plain(key)[kPaused]
	if err := r.eval(ctx, lua.PauseUntil, []any{k}, until, until/1000+1).Err(); err != nil {
		return fmt.Errorf("queue: pause %q until %d: %w", key, until, err)
	}
	return nil
}

func (r *Redis) ResumeKey(ctx context.Context, key string) error {
	if err := r.rdb.Del(ctx, r.ks.plain(key)[kPaused]).Err(); err != nil {
		return fmt.Errorf("queue: resume %q: %w", key, err)
	}
	return nil
}

func (r *Redis) AddCounters(ctx context.Context, calls []CountCall) []error {
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		args := make([]any, 0, 3+2*len(c.Batch.Deltas))
		args = append(args, c.Batch.Node, c.Batch.Seq, max(c.P.StatsTTL, time.Second).Milliseconds())
		for name, d := range c.Batch.Deltas {
			args = append(args, name, d)
		}
		cmds[i] = evalSHA(ctx, lua.Counters, []any{r.ks.perKeyArgs(c.Key, c.P.Limit)[kStats]}, args...)
	}
	r.evalPipelined(ctx, cmds)
	errs := make([]error, len(calls))
	for i, c := range cmds {
		if err := c.Err(); err != nil {
			errs[i] = fmt.Errorf("queue: add counters %q: %w", calls[i].Key, err)
		}
	}
	return errs
}
