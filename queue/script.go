package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/lua"
)

// Every script goes through evalPipelined (or resendLost), so that a lost script cache costs
// nothing but a re-send. Redis answers NOSCRIPT to an EVALSHA whose script it does not have
// (restarted without persistence, failed over to a replica, SCRIPT FLUSH) before running
// anything: that command, and only that one, is safe to send again. Any other answer, a script
// error included, means the script ran, and its reply is the caller's. The re-send is an EVAL
// of the source, which cannot meet NOSCRIPT however often the cache is flushed, and which puts
// the script back in the cache of the server that ran it, so later EVALSHAs find it again.

// evalSHA returns the unsent EVALSHA of s over keys with args. The key names come boxed
// (keyspace's perKeyArgs, withJobsArgs keep a key's boxed once: boxing a job script's eighteen
// names cost every call eighteen allocations).
func evalSHA(ctx context.Context, s *redis.Script, keys []any, args ...any) *redis.Cmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, "evalsha", shaArg(s), len(keys))
	a = append(a, keys...)
	return redis.NewCmd(ctx, append(a, args...)...)
}

// shaArgs maps a script to its SHA1, boxed once.
var shaArgs sync.Map

func shaArg(s *redis.Script) any {
	if v, ok := shaArgs.Load(s); ok {
		return v
	}
	v, _ := shaArgs.LoadOrStore(s, any(s.Hash()))
	return v
}

// eval runs s once over keys with args and returns its command, answered.
func (r *Redis) eval(ctx context.Context, s *redis.Script, keys []any, args ...any) *redis.Cmd {
	c := evalSHA(ctx, s, keys, args...)
	r.evalPipelined(ctx, []*redis.Cmd{c})
	return c
}

// evalPipelined sends cmds, each an EVALSHA of a script made by lua.NewScript, in one round
// trip (a plain command when there is one; go-redis splits a cluster's pipeline by node and
// gives each command its own reply or error), then has resendLost send again those that
// answered NOSCRIPT. Each command ends with the reply of exactly one run of its script, or the
// error that kept it from running (or from being answered). Without NOSCRIPT it costs nothing
// over the plain pipeline: no allocation, no round trip.
func (r *Redis) evalPipelined(ctx context.Context, cmds []*redis.Cmd) {
	r.send(ctx, cmds)
	r.resendLost(ctx, cmds)
	r.afterFailure(ctx, cmds)
}

// reloadEvery bounds how often a cluster's slot map is reloaded after failures.
const reloadEvery = 250 * time.Millisecond

// afterFailure has a cluster client reload its slot map when a command of cmds met an outage.
// go-redis reloads it on its own only after a MOVED or ASK reply, which a dead master cannot
// send, or every ClusterStateReloadInterval (a minute by default): without this, the keys of
// a master that died would fail for that long after its replica took over.
func (r *Redis) afterFailure(ctx context.Context, cmds []*redis.Cmd) {
	if r.cluster == nil {
		return
	}
	for _, c := range cmds {
		if !Outage(c.Err()) {
			continue
		}
		now := time.Now().UnixNano()
		if last := r.reloaded.Load(); now-last >= int64(reloadEvery) && r.reloaded.CompareAndSwap(last, now) {
			r.cluster.ReloadState(context.WithoutCancel(ctx))
		}
		return
	}
}

// asFunctions turns the EVALSHAs of cmds into FCALLs of their scripts' functions when Redis
// has them (LoadScripts); commands of scripts NewScript did not make stay as they are.
func (r *Redis) asFunctions(cmds []*redis.Cmd) {
	if !r.functions.Load() {
		return
	}
	for _, c := range cmds {
		a := c.Args()
		if len(a) < 2 || a[0] != "evalsha" {
			continue
		}
		sha, _ := a[1].(string)
		if name, ok := functionName(sha); ok {
			a[0], a[1] = "fcall", name
		}
	}
}

// functionNames maps a script's SHA1 to the name of its function, boxed once (boxing the
// string on every call would cost the fast path an allocation).
var functionNames sync.Map

func functionName(sha string) (any, bool) {
	if v, ok := functionNames.Load(sha); ok {
		return v, true
	}
	name, _, ok := lua.Function(sha)
	if !ok {
		return nil, false
	}
	v, _ := functionNames.LoadOrStore(sha, any(name))
	return v, true
}

// loadLibraries loads the function library of each script of scripts (SHA1s or functions'
// names, as lua.Function takes them) into Redis, every master of a cluster, in one round trip
// per server, replacing a library of the same name; with missing, only those a server does not
// list (a library's name is its code's digest), one round trip more. Redis compiles a library
// in about a millisecond, during which it serves nothing else.
func (r *Redis) loadLibraries(ctx context.Context, scripts []string, missing bool) error {
	load := func(ctx context.Context, c *redis.Client) error {
		has := map[string]bool{}
		if missing {
			libs, err := c.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: lua.FunctionPrefix + "*"}).Result()
			if err != nil {
				return err
			}
			for _, l := range libs {
				has[l.Name] = true
			}
		}
		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, s := range scripts {
				if name, lib, ok := lua.Function(s); ok && !has[name] {
					p.FunctionLoadReplace(ctx, lib)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range cmds {
			if err := c.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	switch c := r.rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, load)
	case *redis.Client:
		return load(ctx, c)
	}
	return fmt.Errorf("queue: function libraries on a %T: %w", r.rdb, errNoLibraries)
}

// errNoLibraries: the client is of a kind loadLibraries cannot reach every master of; its
// scripts go as EVALSHA.
var errNoLibraries = errors.New("not a client of one server or of a cluster")

// reloadLost loads again the libraries of the functions that lost, commands that Redis answered
// that it has no such function: a restart without persistence, FUNCTION FLUSH, a new master. At
// most one caller at a time reloads; the others go on (their commands are sent again as EVAL
// meanwhile). A failure to load is left to the next loss.
func (r *Redis) reloadLost(ctx context.Context, lost []*redis.Cmd) {
	if !r.reloading.TryLock() {
		return
	}
	defer r.reloading.Unlock()
	var names []string
	for _, c := range lost {
		if name, _ := c.Args()[1].(string); !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	_ = r.loadLibraries(context.WithoutCancel(ctx), names, false)
}

// resendLost sends again, as EVAL of the script's source, exactly the commands of cmds (sent,
// answered EVALSHAs) that answered NOSCRIPT, in one round trip, and gives each its new reply.
// The others are left as they are. A script lua does not know keeps its NOSCRIPT.
func (r *Redis) resendLost(ctx context.Context, cmds []*redis.Cmd) {
	var lost, again, fns []*redis.Cmd // allocated only when a script was lost
	for _, c := range cmds {
		switch {
		case isNoScript(c.Err()):
		case isNoFunction(c.Err()):
			fns = append(fns, c)
		default:
			continue
		}
		a := c.Args()
		sha, _ := a[1].(string)
		src, ok := lua.Source(sha)
		if !ok {
			continue
		}
		e := make([]any, len(a))
		copy(e, a)
		e[0], e[1] = "eval", src
		lost = append(lost, c)
		again = append(again, redis.NewCmd(ctx, e...))
	}
	if len(fns) > 0 {
		r.reloadLost(ctx, fns)
	}
	if len(again) == 0 {
		return
	}
	r.send(ctx, again)
	for i, c := range lost {
		c.SetVal(again[i].Val())
		c.SetErr(again[i].Err())
	}
}

// send sends cmds in one round trip: a plain command when there is one, else a pipeline. Each
// command keeps its own reply or error.
func (r *Redis) send(ctx context.Context, cmds []*redis.Cmd) {
	r.asFunctions(cmds)
	if len(cmds) == 1 {
		_ = r.rdb.Process(ctx, cmds[0])
		return
	}
	pipe := r.rdb.Pipeline()
	for _, c := range cmds {
		_ = pipe.Process(ctx, c)
	}
	_, _ = pipe.Exec(ctx)
}

// isNoFunction reports whether err is Redis's answer to an FCALL of a function it does not
// have.
func isNoFunction(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "Function not found")
}

// isNoScript reports whether err is Redis's answer to an EVALSHA of a script it does not have.
func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}
