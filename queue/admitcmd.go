package queue

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/lua"
)

// admitOne sends one admit on its own: the Admit script, whose fast path returns before the
// line's helpers are even defined.
func (r *Redis) admitOne(ctx context.Context, a callArgs) (AdmitReply, error) {
	return r.admitWith(ctx, a, r.ks.perKeyArgs(a.t.Key, a.p.Limit))
}

// admitWith is admitOne with the key's names at hand (perKeyNames.args).
func (r *Redis) admitWith(ctx context.Context, a callArgs, keys []any) (AdmitReply, error) {
	cmd := r.admitCmd(ctx, a.p, a.t, a.raw, keys)
	r.evalPipelined(ctx, []*redis.Cmd{cmd})
	return answerOne(cmd)
}

// admitLone sends one admit whose flight is alone in the air until it lands (the batcher's lone
// call, or a solo flight of one): lean when it may (mayLean; four names and five arguments
// fewer, and it only grants: see admit_fast.lua), and, when that did not grant it, again in
// full. A ticket that may not wait goes in full at once: not granted, it is refused, in one
// command (the middleware's answer at once). It keeps the key's busy flag (keepBusy).
func (r *Redis) admitLone(ctx context.Context, a callArgs) (AdmitReply, error) {
	names := r.ks.cached(cacheKey(a.t.Key, a.p.Limit, false))
	if names.mayLean(a) {
		cmd := r.admitLeanCmd(ctx, a, names)
		r.evalPipelined(ctx, []*redis.Cmd{cmd})
		rep, granted, err := answerLean(cmd)
		if granted {
			names.keepBusy([]AdmitReply{rep}, 1)
		}
		if err != nil || granted {
			return rep, err
		}
	}
	rep, err := r.admitWith(ctx, a, names.args)
	if err == nil {
		names.keepBusy([]AdmitReply{rep}, 1)
	}
	return rep, err
}

// mayLean says whether a's ticket may go lean to its key of names n: the key is not busy, its
// limit is not a shadow limit (whose grants count in stats) and the ticket may wait in line.
func (n perKeyNames) mayLean(a callArgs) bool {
	return !a.p.Limit.Shadow && !n.busy.Load() && mayWait(a)
}

// keepBusy sets the busy flag of the key of names n from the replies to the first len(reps) of
// its count tickets sent together: busy when not all were granted (some left to admit again,
// queued or refused) or the last grant left the window nothing (spent), else not.
func (n perKeyNames) keepBusy(reps []AdmitReply, count int) {
	n.busy.Store(len(reps) < count || slices.ContainsFunc(reps, func(r AdmitReply) bool { return r.Outcome != Granted }) ||
		spent(reps[len(reps)-1]))
}

// leanMinWait: a ticket whose deadline is nearer than this after it came may not wait in line
// (a request that takes only a grant at once, as the middleware's with no Wait).
const leanMinWait = time.Millisecond

// mayWait says whether a's ticket may wait in line: its limit queues and its deadline is not
// within leanMinWait.
func mayWait(a callArgs) bool {
	return a.p.Limit.MaxQueue >= 0 && a.t.Deadline-a.t.Enqueued >= leanMinWait.Microseconds()
}

// spent says whether a grant's reply leaves its key's window nothing more to admit now: the
// key's next admit would not be granted, and goes in full (busy).
func spent(rep AdmitReply) bool { return rep.Outcome == Granted && rep.Remaining <= 0 }

// admitLeanCmd returns the unsent EVALSHA of Admit for one ticket sent lean: its key's lean
// names, the limit's six arguments, the ticket's id and cost.
func (r *Redis) admitLeanCmd(ctx context.Context, a callArgs, names perKeyNames) *redis.Cmd {
	return redis.NewCmd(ctx, append(admitArgs(names.lean, r.params.args(a.p), 2), a.t.ID, a.t.CostOf())...)
}

// admitArgs begins the arguments of an EVALSHA of Admit: the key's names keys and the limit's
// six arguments (the first six of lim, Params' arguments), with room for more after them.
func admitArgs(keys, lim []any, more int) []any {
	a := make([]any, 0, 3+len(keys)+6+more)
	a = append(a, "evalsha", shaArg(lua.Admit), len(keys))
	a = append(a, keys...)
	return append(a, lim[:6]...)
}

// answerLean reads the reply of a lean Admit: the grant's reply, or granted false when it did
// not grant (and wrote nothing).
func answerLean(cmd *redis.Cmd) (rep AdmitReply, granted bool, err error) {
	v, err := cmd.Result()
	if err != nil {
		return AdmitReply{}, false, err
	}
	s, err := replySlice(v, 1)
	if err != nil {
		return AdmitReply{}, false, fmt.Errorf("reply: %w", err)
	}
	if code, err := replyInt(s[0]); err != nil || code != 0 && (code != int64(Granted) || len(s) < 5) {
		return AdmitReply{}, false, fmt.Errorf("reply: a lean admit's %v", v)
	} else if code == 0 {
		return AdmitReply{}, false, nil
	}
	var n [4]int64
	for i := range n {
		if n[i], err = replyInt(s[i+1]); err != nil {
			return AdmitReply{}, false, fmt.Errorf("reply: element %d: %w", i+1, err)
		}
	}
	return AdmitReply{Outcome: Granted, Now: n[0], Remaining: int(n[1]), ResetAfter: n[2], Which: int(n[3])}, true, nil
}

// admitCmd returns the unsent EVALSHA of Admit for one ticket to the key whose names are keys,
// built from the key names and limit arguments boxed once per key (evalSHA would box them
// again on every call).
func (r *Redis) admitCmd(ctx context.Context, p Params, t *Ticket, raw []byte, keys []any) *redis.Cmd {
	lim := r.params.args(p)
	a := admitArgs(keys, lim, 10)
	a = append(a, raw, t.ID, t.Priority.Line(), t.Deadline, lim[6], lim[7], lim[8])
	if c := t.CostOf(); c != 1 || t.Tenant != "" {
		a = append(a, c)
	}
	if t.Tenant != "" {
		a = append(a, t.Tenant, max(1, t.Weight))
	}
	return redis.NewCmd(ctx, a...)
}

func answerOne(cmd *redis.Cmd) (AdmitReply, error) {
	v, err := cmd.Result()
	if err != nil {
		return AdmitReply{}, err
	}
	rep, err := parseAdmit(v)
	if err != nil {
		return AdmitReply{}, fmt.Errorf("reply: %w", err)
	}
	return rep, nil
}

// admitAll sends the admits of batch and gives each call its answer. The admits of one key and
// Params go as one AdmitMany call, in arrival order; on a single Redis every key's go in that
// one call, on a cluster one call per key, in one pipeline. A lone admit goes as Admit.
func (r *Redis) admitAll(ctx context.Context, batch []*admitCall) { r.admitBatch(ctx, batch, false) }

// admitSolo is admitAll for a batch whose flight is the only one in the air until it lands
// (the batcher's solo): on a single Redis, the keys that are not busy go lean (leanGroups), and
// the tickets they do not grant go again in full, before any later admit of this process.
func (r *Redis) admitSolo(ctx context.Context, batch []*admitCall) { r.admitBatch(ctx, batch, true) }

// admitBatch is admitAll, with the lean way when mayLean.
func (r *Redis) admitBatch(ctx context.Context, batch []*admitCall, mayLean bool) {
	if len(batch) == 1 {
		c := batch[0]
		if mayLean {
			c.rep, c.err = r.admitLone(ctx, c.a)
		} else {
			c.rep, c.err = r.admitOne(ctx, c.a)
		}
		return
	}
	if slices.ContainsFunc(batch, func(c *admitCall) bool { return c.a.t.Tenant != "" }) {
		r.admitTenants(ctx, batch)
		return
	}
	groups := groupCalls(batch, func(a, b callArgs) bool { return a.p == b.p })
	if r.cluster == nil && !r.keysApart.Load() {
		var names []perKeyNames
		var lean []bool
		if mayLean {
			names, lean = r.leanGroups(groups)
		}
		cmd := r.admitManyCmd(ctx, groups, names, lean)
		r.evalPipelined(ctx, []*redis.Cmd{cmd})
		if !isCrossSlot(cmd.Err()) {
			if again, againNames := answerMany(cmd, groups, names, lean); len(again) > 0 {
				r.admitAgain(ctx, again, againNames)
			}
			return
		}
		// A server in cluster mode behind a plain client refused keys of several slots before
		// running anything: from now on, one call per key.
		r.keysApart.Store(true)
	}
	sendGroups(ctx, r, groups, func(g []*admitCall) *redis.Cmd { return r.admitGroupCmd(ctx, g) }, admitAnswers)
}

// leanGroups returns the names of each group's key and which groups go lean: those whose
// tickets all may (mayLean: a ticket that may not wait is refused in the full call's one
// command) and whose key has no other group in the batch (a later group of the key, granted
// while an earlier one's tickets wait to go again, would pass them). A lean key's call
// carries four names and three arguments a ticket fewer, and only grants (see
// admit_many.lua); the tickets it does not grant go again in full, in a second call.
func (r *Redis) leanGroups(groups [][]*admitCall) ([]perKeyNames, []bool) {
	var groupsOf map[string]int // of each key, how many groups
	if len(groups) > 1 {
		groupsOf = make(map[string]int, len(groups))
		for _, g := range groups {
			groupsOf[g[0].a.t.Key]++
		}
	}
	names := make([]perKeyNames, len(groups))
	lean := make([]bool, len(groups))
	for i, g := range groups {
		names[i] = r.ks.cached(cacheKey(g[0].a.t.Key, g[0].a.p.Limit, false))
		lean[i] = (groupsOf == nil || groupsOf[g[0].a.t.Key] == 1) &&
			!slices.ContainsFunc(g, func(c *admitCall) bool { return !names[i].mayLean(c.a) })
	}
	return names, lean
}

// admitAgain admits in full the calls that a lean AdmitMany did not grant (again: the rest of
// each lean group, in order; names, each one's key's), in one call.
func (r *Redis) admitAgain(ctx context.Context, again [][]*admitCall, names []perKeyNames) {
	if len(again) == 1 && len(again[0]) == 1 {
		c := again[0][0]
		c.rep, c.err = r.admitWith(ctx, c.a, names[0].args)
		return
	}
	cmd := r.admitManyCmd(ctx, again, names, nil)
	r.evalPipelined(ctx, []*redis.Cmd{cmd})
	answerMany(cmd, again, names, nil)
}

// admitGroupCmd returns the unsent call for one group of admits of a key: Admit for a lone
// one, else AdmitMany.
func (r *Redis) admitGroupCmd(ctx context.Context, g []*admitCall) *redis.Cmd {
	if len(g) == 1 {
		return r.admitCmd(ctx, g[0].a.p, g[0].a.t, g[0].a.raw, r.ks.perKeyArgs(g[0].a.t.Key, g[0].a.p.Limit))
	}
	return r.admitManyCmd(ctx, [][]*admitCall{g}, nil, nil)
}

// admitAnswers reads the reply of admitGroupCmd's call for g.
func admitAnswers(g []*admitCall, v any) ([]AdmitReply, error) {
	if len(g) == 1 {
		rep, err := parseAdmit(v)
		if err != nil {
			return nil, fmt.Errorf("reply: %w", err)
		}
		return []AdmitReply{rep}, nil
	}
	entries, err := replySlice(v, 1)
	if err != nil {
		return nil, fmt.Errorf("reply: %w", err)
	}
	return parseAdmitMany(entries[0], len(g), g[0].a.p.Limit.Complex(), g[0].a.p.Limit.Shadow, false)
}

// admitTenants sends a batch that holds admits of tenants (WithTenant): those as Admit calls of
// their own, in one pipeline after the others' (AdmitMany does not take tenants).
func (r *Redis) admitTenants(ctx context.Context, batch []*admitCall) {
	var plain, own []*admitCall
	for _, c := range batch {
		if c.a.t.Tenant != "" {
			own = append(own, c)
		} else {
			plain = append(plain, c)
		}
	}
	if len(plain) > 0 {
		r.admitAll(ctx, plain)
	}
	alone := make([][]*admitCall, len(own))
	for i, c := range own {
		alone[i] = []*admitCall{c}
	}
	sendGroups(ctx, r, alone, func(g []*admitCall) *redis.Cmd { return r.admitGroupCmd(ctx, g) }, admitAnswers)
}

// admitManyCmd returns the unsent EVALSHA of AdmitMany for groups, one entry per group, with
// each distinct Params given once; names, when not nil, are each group's key's, and the groups
// with lean set go lean (see leanGroups).
func (r *Redis) admitManyCmd(ctx context.Context, groups [][]*admitCall, names []perKeyNames, lean []bool) *redis.Cmd {
	keys := make([][]any, len(groups))
	sets := make([]int, len(groups)) // the number of each group's Params among the distinct
	var ps []Params
	var perSet []int // the number of KEYS of a key of each of ps, in full
	nkeys, nargs := 0, 1
	for i, g := range groups {
		var full []any
		if names != nil {
			full = names[i].args
		} else {
			full = r.ks.perKeyArgs(g[0].a.t.Key, g[0].a.p.Limit)
		}
		keys[i] = full
		nargs += 2 + 5*len(g)
		if lean != nil && lean[i] {
			keys[i] = names[i].lean
			nargs -= 3 * len(g)
		}
		nkeys += len(keys[i])
		if sets[i] = slices.Index(ps, g[0].a.p) + 1; sets[i] == 0 {
			ps = append(ps, g[0].a.p)
			perSet = append(perSet, len(full))
			sets[i] = len(ps)
			nargs += 10
		}
	}
	a := make([]any, 0, 3+nkeys+nargs)
	a = append(a, "evalsha", shaArg(lua.AdmitMany), nkeys)
	for _, k := range keys {
		a = append(a, k...)
	}
	a = append(a, len(ps))
	for i, p := range ps {
		a = append(a, r.params.args(p)...)
		a = append(a, perSet[i])
	}
	for i, g := range groups {
		if lean != nil && lean[i] {
			a = append(a, sets[i], -len(g))
			for _, c := range g {
				a = append(a, c.a.t.ID, c.a.t.CostOf())
			}
			continue
		}
		a = append(a, sets[i], len(g))
		for _, c := range g {
			a = append(a, c.a.raw, c.a.t.ID, c.a.t.Priority.Line(), c.a.t.Deadline, c.a.t.CostOf())
		}
	}
	return redis.NewCmd(ctx, a...)
}

// answerMany gives the calls of groups their answers from cmd, an AdmitMany over groups sent
// with names and lean as admitManyCmd took them, and returns the calls that a lean group did
// not grant, to be admitted again in full (the rest of each such group, in order), with their
// keys' names. With names, it keeps each key's busy flag (keepBusy).
func answerMany(cmd *redis.Cmd, groups [][]*admitCall, names []perKeyNames, lean []bool) (again [][]*admitCall, againNames []perKeyNames) {
	v, err := cmd.Result()
	var entries []any
	if err == nil {
		if entries, err = replySlice(v, len(groups)); err != nil {
			err = fmt.Errorf("reply: %w", err)
		}
	}
	for i, g := range groups {
		var reps []AdmitReply
		kerr := err
		isLean := lean != nil && lean[i]
		if kerr == nil {
			reps, kerr = parseAdmitMany(entries[i], len(g), g[0].a.p.Limit.Complex(), g[0].a.p.Limit.Shadow, isLean)
		}
		if kerr == nil && names != nil {
			names[i].keepBusy(reps, len(g))
		}
		for j, c := range g {
			switch {
			case kerr != nil:
				c.err = kerr
			case j < len(reps):
				c.rep = reps[j]
			}
		}
		if kerr == nil && len(reps) < len(g) {
			again = append(again, g[len(reps):])
			againNames = append(againNames, names[i])
		}
	}
	return again, againNames
}

// parseAdmitMany turns one key's entry of AdmitMany's reply into the replies of its n tickets,
// or into the error the key's part of the script met (its tickets' answer, not the others').
// A key sent lean answers only the tickets it granted, the first len(reps).
func parseAdmitMany(v any, n int, complex, shadow, lean bool) ([]AdmitReply, error) {
	if err, ok := v.(error); ok {
		return nil, err
	}
	reps, err := parseAdmitEntry(v, n, complex, shadow, lean)
	if err != nil {
		return nil, fmt.Errorf("reply: %w", err)
	}
	return reps, nil
}

// parseAdmitEntry reads one key's entry of AdmitMany's reply for n tickets; complex: of a limit
// of more than one rate counting requests, whose grants' remaining come one by one; shadow: of
// a shadow limit, which grants past what the window had free.
func parseAdmitEntry(v any, n int, complex, shadow, lean bool) ([]AdmitReply, error) {
	s, err := replySlice(v, 6)
	if err != nil {
		return nil, err
	}
	head, err := replyInts(s[:6])
	if err != nil {
		return nil, err
	}
	now, granted, free, reset, step, which := head[0], int(head[1]), int(head[2]), head[3], head[4], int(head[5])
	told := 6 // where the refused and queued tickets' answers start
	if complex {
		told += 2 * max(0, granted)
	}
	verdicts := told // where a shadow key's verdicts start, when all were granted
	if shadow && granted > 0 {
		told += 2 * granted
	}
	answered := n // the tickets the entry answers
	if lean {
		answered = granted
	}
	if granted < 0 || granted > n || (granted > free && !shadow) || len(s) != told+6*(answered-granted) {
		return nil, fmt.Errorf("%d elements with %d of %d tickets granted", len(s), granted, n)
	}
	reps := make([]AdmitReply, answered)
	for i := range granted {
		reps[i] = AdmitReply{Outcome: Granted, Now: now, Remaining: free - 1 - i,
			ResetAfter: reset - int64(granted-1-i)*step, Which: which}
		if complex {
			m, err := replyInts(s[6+2*i : 8+2*i])
			if err != nil {
				return nil, fmt.Errorf("ticket %d: %w", i, err)
			}
			reps[i].Remaining, reps[i].ResetAfter = int(m[0]), m[1]
		}
		if shadow {
			m, err := replyInts(s[verdicts+2*i : verdicts+2+2*i])
			if err != nil || m[0] < int64(ShadowAllowed) || m[0] > int64(ShadowRefused) {
				return nil, fmt.Errorf("ticket %d: shadow verdict %v (%v)", i, s[verdicts+2*i], err)
			}
			reps[i].Shadow, reps[i].ShadowWait = ShadowVerdict(m[0]), m[1]
		}
	}
	for i := granted; i < answered; i++ {
		e := s[told+6*(i-granted):]
		m, err := replyInts(e[:4])
		if err != nil {
			return nil, fmt.Errorf("ticket %d: %w", i, err)
		}
		ev, err := replyBytes(e[4])
		if err != nil {
			return nil, fmt.Errorf("ticket %d: %w", i, err)
		}
		var after int64
		if b, ok := e[5].(string); !ok || b != "" { // '': queued, nothing after the ticket in its entry
			if after, err = replyInt(e[5]); err != nil {
				return nil, fmt.Errorf("ticket %d: %w", i, err)
			}
		}
		if m[0] < int64(Queued) || m[0] > int64(WouldExceed) {
			return nil, fmt.Errorf("ticket %d: unknown outcome %d", i, m[0])
		}
		reps[i] = AdmitReply{Outcome: Outcome(m[0]), Now: now, Remaining: int(m[1]), Earliest: m[2],
			LineBefore: int(m[3]), ResetAfter: after, Which: which}
		if len(ev) > 0 {
			reps[i].Evicted = ev
		}
	}
	return reps, nil
}

// isCrossSlot reports whether err is a cluster-mode server's refusal of a command whose keys
// lie in several slots; nothing ran.
func isCrossSlot(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "CROSSSLOT")
}

// undoTimeout bounds undoAdmit's call.
const undoTimeout = 5 * time.Second

// undoAdmit undoes an admit whose answer (rep, err) came after its caller had stopped waiting
// (ErrNoAnswer): a grant on arrival goes back to the window (counted as admitted and refunded,
// since no node counted it), and the ticket is cancelled — the answer is that of the last
// time the Redis client sent the admit, and an earlier sending, whose reply a connection error
// cut, may have queued a copy (even one granted since, among the local grants). A cancel
// changes nothing where there is nothing. Left alone, a queued ticket would wait for nobody,
// and be granted to nobody.
func (r *Redis) undoAdmit(a callArgs, rep AdmitReply, err error) {
	p, t := a.p, a.t
	ctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
	defer cancel()
	if err == nil && rep.Outcome == Granted {
		_, _ = r.runJobs(ctx, lua.Refund, t.Key, p, t.ID, rep.Now, "", 1, t.CostOf())
	}
	_, _ = r.Cancel(ctx, p, t, a.raw)
}
