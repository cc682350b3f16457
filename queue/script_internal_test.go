package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/lua"
)

// TestEvalPipelinedResendsOnlyLostScripts: a pipeline mixes calls of loaded scripts and of
// scripts Redis does not have, some replying a script error after their write. The helper sends
// again exactly the commands that answered NOSCRIPT (as EVALSHA) or that the function was not
// found (as FCALL), as EVAL: every counter is incremented once and every command has its own
// script's reply, errors included. One command alone does the same. As scripts and as functions;
// a function lost is loaded again.
func TestEvalPipelinedResendsOnlyLostScripts(t *testing.T) {
	for name, open := range topologies {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb, prefix := open(t)
			for _, functions := range []bool{false, true} {
				resendsOnlyLost(t, rdb, fmt.Sprintf("%s:%v", prefix, functions), functions)
			}
		})
	}
}

func resendsOnlyLost(t *testing.T, rdb redis.UniversalClient, prefix string, functions bool) {
	ctx := context.Background()
	// Scripts of this test's own (a random comment makes their SHA1 new to the server): each
	// increments KEYS[1] and replies {its name, the count, ARGV[1]}; the "fail" ones write,
	// then reply an error.
	nonce := make([]byte, 8)
	rand.Read(nonce)
	script := func(name, reply string) *redis.Script {
		return lua.NewScript(fmt.Sprintf("-- %s %x\nlocal n = redis.call('INCR', KEYS[1])\n%s", name, nonce, reply))
	}
	ok := "return {'%s', n, ARGV[1]}"
	loaded := script("loaded", fmt.Sprintf(ok, "loaded"))
	lost := script("lost", fmt.Sprintf(ok, "lost"))
	loadedFail := script("loadedFail", "return redis.error_reply('loadedFail ' .. ARGV[1])")
	lostFail := script("lostFail", "return redis.error_reply('lostFail ' .. ARGV[1])")
	r := NewRedis(rdb, prefix, 4)
	if functions {
		r.functions.Store(true)
		if err := r.loadLibraries(ctx, []string{loaded.Hash(), loadedFail.Hash()}, false); err != nil {
			t.Fatal(err)
		}
	} else {
		for _, s := range []*redis.Script{loaded, loadedFail} {
			if err := s.Load(ctx, rdb).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	scripts := []*redis.Script{loaded, lost, loadedFail, lostFail}
	const n = 40
	cmds := make([]*redis.Cmd, n)
	keys := make([]string, n)
	for i := range cmds {
		// A hash tag per command spreads them over a cluster's masters.
		keys[i] = fmt.Sprintf("%s:{c%d}", prefix, i)
		cmds[i] = evalSHA(ctx, scripts[i%len(scripts)], []any{keys[i]}, "arg"+fmt.Sprint(i))
	}
	r.evalPipelined(ctx, cmds)
	for i, c := range cmds {
		if want := map[bool]string{false: "evalsha", true: "fcall"}[functions]; c.Args()[0] != want {
			t.Fatalf("command %d went as %v, want %s", i, c.Args()[0], want)
		}
		check(t, rdb, c, keys[i], i%len(scripts), i)
	}

	// One command alone, of a script Redis does not have.
	one := script("one", fmt.Sprintf(ok, "lost"))
	key := prefix + ":{one}"
	c := evalSHA(ctx, one, []any{key}, "arg7")
	r.evalPipelined(ctx, []*redis.Cmd{c})
	check(t, rdb, c, key, 1, 7)
	if !functions {
		return
	}
	// The lost functions were loaded again: they answer as functions now.
	name, _, _ := lua.Function(lost.Hash())
	if v, err := rdb.FCall(ctx, name, []string{prefix + ":{again}"}, "x").Slice(); err != nil || v[0] != "lost" {
		t.Fatalf("the lost function, called again: %v, %v", v, err)
	}
}

// check verifies the reply of command c on key, made by script kind (0 loaded, 1 lost,
// 2 loadedFail, 3 lostFail) with ARGV[1] "arg<i>", and that the script ran exactly once.
func check(t *testing.T, rdb redis.UniversalClient, c *redis.Cmd, key string, kind, i int) {
	t.Helper()
	arg := "arg" + fmt.Sprint(i)
	names := []string{"loaded", "lost", "loadedFail", "lostFail"}
	if kind < 2 {
		v, err := c.Slice()
		if err != nil || len(v) != 3 || v[0] != names[kind] || v[1] != int64(1) || v[2] != arg {
			t.Errorf("command %d (%s): %v, %v; want [%s 1 %s]", i, names[kind], v, err, names[kind], arg)
		}
	} else if err := c.Err(); err == nil || err.Error() != names[kind]+" "+arg {
		t.Errorf("command %d (%s): error %v; want %q", i, names[kind], err, names[kind]+" "+arg)
	}
	if n, err := rdb.Get(context.Background(), key).Int(); err != nil || n != 1 {
		t.Errorf("command %d (%s): its script ran %d times (%v); want once", i, names[kind], n, err)
	}
}

// A script lua does not know cannot be sent again as EVAL: its NOSCRIPT stays.
func TestEvalPipelinedUnknownScript(t *testing.T) {
	srv := redistest.Server(t)
	rdb := srv.Client(t)
	r := NewRedis(rdb, srv.Prefix(t), 4)
	b := make([]byte, 20)
	rand.Read(b)
	c := redis.NewCmd(context.Background(), "evalsha", hex.EncodeToString(b), 0)
	r.evalPipelined(context.Background(), []*redis.Cmd{c})
	if !isNoScript(c.Err()) {
		t.Fatalf("EVALSHA of an unknown script: %v; want its NOSCRIPT", c.Err())
	}
}

// topologies opens the shared Redis or the shared cluster, with a prefix of the test's own.
var topologies = map[string]func(t *testing.T) (redis.UniversalClient, string){
	"redis": func(t *testing.T) (redis.UniversalClient, string) {
		srv := redistest.Server(t)
		return srv.Client(t), srv.Prefix(t)
	},
	"cluster": func(t *testing.T) (redis.UniversalClient, string) {
		cl := redistest.SharedCluster(t)
		return cl.Client(t), cl.Prefix(t)
	},
}
