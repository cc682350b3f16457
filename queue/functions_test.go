package queue_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/lua"
	"github.com/rateltd/rateltd/queue"
)

// TestLimitsKeptBetweenCalls: a Redis function keeps the limit it read between calls and reads
// it again only when another is given (limits.lua's bind). Keys of five limits, two of them of
// one algorithm, admitted to in turn, a ticket each per round: each key grants what its own
// limit allows, as scripts (no LoadScripts) and as functions, the same as the memory backend.
func TestLimitsKeptBetweenCalls(t *testing.T) {
	withAlso := config.Limit{Max: 6, Window: time.Minute}
	withAlso.Also[0] = config.Rate{Max: 2, Window: time.Minute}
	limits := []config.Limit{
		{Max: 3, Window: time.Minute},
		{Max: 6, Window: time.Minute},
		{Algorithm: config.FixedWindow, Max: 4, Window: time.Minute},
		withAlso,
		{Concurrency: 1},
	}
	want := []int{3, 6, 4, 2, 1}
	run := func(t *testing.T, be queue.Backend) {
		node := uuid.New()
		granted := make([]int, len(limits))
		for range 8 {
			for i, l := range limits {
				tk, raw := ticket(t, be, fmt.Sprintf("k%d", i), node, config.PriorityNormal)
				rep, err := be.Admit(context.Background(), params(l), tk, raw)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Outcome == queue.Granted {
					granted[i]++
				}
			}
		}
		if fmt.Sprint(granted) != fmt.Sprint(want) {
			t.Fatalf("granted %v, want %v", granted, want)
		}
	}
	t.Run("memory", func(t *testing.T) { run(t, queue.NewMemory()) })
	eachFreshRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		for i, functions := range []bool{false, true} {
			r := queue.NewRedis(rdb, fmt.Sprintf("%s%d", prefix, i), 4)
			if functions {
				if err := r.LoadScripts(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			run(t, r)
		}
	})
}

// TestLoadScriptsLoadsWhatIsMissing: a Client's start loads only the function libraries Redis
// does not have (each costs Redis about a millisecond of compiling, during which it serves
// nothing else): all of them on a fresh server, none on the next start, and only a deleted one
// after that.
func TestLoadScriptsLoadsWhatIsMissing(t *testing.T) {
	srv := redistest.Fresh(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	loads := func() int {
		info, err := rdb.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "cmdstat_function|load:calls="); ok {
				n, _ := strconv.Atoi(v[:strings.IndexByte(v, ',')])
				return n
			}
		}
		return 0
	}
	start := func(want int) {
		t.Helper()
		before := loads()
		r := queue.NewRedis(rdb, "p", 4)
		if err := r.LoadScripts(ctx); err != nil {
			t.Fatal(err)
		}
		if got := loads() - before; got != want {
			t.Fatalf("%d libraries loaded, want %d", got, want)
		}
		tk, raw := ticket(t, r, "k", nodeA, config.PriorityNormal)
		admit(t, r, params(config.Limit{Max: 100, Window: time.Minute}), tk, raw, queue.Granted)
	}
	start(len(lua.All))
	start(0)
	name, _, _ := lua.Function(lua.Admit.Hash())
	if err := rdb.FunctionDelete(ctx, name).Err(); err != nil {
		t.Fatal(err)
	}
	start(1)
}

// TestLoadScriptsWithoutFunctions: where Redis refuses FUNCTION LOAD (here an ACL user without
// the function commands), LoadScripts loads the scripts and the calls go as EVALSHA.
func TestLoadScriptsWithoutFunctions(t *testing.T) {
	srv := redistest.Fresh(t)
	ctx := context.Background()
	if err := srv.Client(t).Do(ctx, "acl", "setuser", "nofn", "on", ">pw", "~*", "&*", "+@all", "-function").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "nofn", Password: "pw"})
	defer rdb.Close()
	hook := &redistest.CommandCounter{Names: []string{"evalsha"}}
	rdb.AddHook(hook)
	r := queue.NewRedis(rdb, "p", 4)
	if err := r.LoadScripts(ctx); err != nil {
		t.Fatalf("LoadScripts as a user without FUNCTION: %v", err)
	}
	tk, raw := ticket(t, r, "k", nodeA, config.PriorityNormal)
	admit(t, r, params(config.Limit{Max: 100, Window: time.Minute}), tk, raw, queue.Granted)
	if hook.Count() != 1 {
		t.Fatalf("%d EVALSHAs for one admit, want 1", hook.Count())
	}
}
