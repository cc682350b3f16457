package lua_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/lua"
)

// TestLibraryAsScript: small scripts with the shapes the transform must carry over answer the
// same as a function (three calls in a row, each from a fresh state) as they do as EVAL.
func TestLibraryAsScript(t *testing.T) {
	var many strings.Builder // 70 top-level locals, all read: more than one step can hold
	many.WriteString("local s = 0\n")
	for i := range 70 {
		fmt.Fprintf(&many, "local v%d = %d\n", i, i)
	}
	for i := range 70 {
		fmt.Fprintf(&many, "s = s + v%d\n", i)
	}
	many.WriteString("return s\n")
	cases := []struct {
		name, src string
		argv      []any
	}{
		{"state starts afresh", "local n = 0\nlocal function inc() n = n + 1 return n end\ninc()\nreturn inc()\n", nil},
		{"a local without a value is nil", "local x\nif x then return 'kept' end\nx = 1\nreturn 'fresh'\n", nil},
		{"return in a block, taken", "local a = tonumber(ARGV[1])\nif a > 1 then\n  return 'big'\nend\nreturn 'small'\n", []any{2}},
		{"return in a block, not taken", "local a = tonumber(ARGV[1])\nif a > 1 then\n  return 'big'\nend\nreturn 'small'\n", []any{0}},
		{"return of nothing", "if ARGV[1] == 'x' then return end\nreturn 1\n", []any{"x"}},
		{"return in a loop", "for i = 1, 3 do\n  if i == tonumber(ARGV[1]) then return {i, 'at'} end\nend\nreturn 0\n", []any{2}},
		{"keys stood in for", "local ALL = KEYS\nlocal KEYS = {ALL[2]}\nlocal function first() return KEYS[1] end\nreturn first()\n", nil},
		{"a function as a value", "local f = function() return 'inner' end\nlocal g = f()\nreturn g .. ARGV[1]\n", []any{"!"}},
		{"long strings and comments", "local s = [[a\nreturn 'no']] -- [[\n--[[ return 'comment'\n]]\nlocal t = [==[\n]]\n]==]\nreturn s .. t\n", nil},
		{"a helper reading later state", "local x\nlocal function get() return x end\nx = ARGV[1]\nreturn get()\n", []any{"v"}},
		{"two statements on a line", "local a = ARGV[1]; local b = a .. '!'\nlocal function f() return b end\nreturn f()\n", []any{"x"}},
		{"redis.call per call", "local n = redis.call('INCR', KEYS[1])\nreturn n\n", nil},
		{"many locals", many.String(), nil},
	}
	srv := redistest.Fresh(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("test_%d", i)
			lib, err := lua.Library(name, c.src)
			if err != nil {
				t.Fatal(err)
			}
			if err := rdb.FunctionLoadReplace(ctx, lib).Err(); err != nil {
				t.Fatalf("%v\n%s", err, lib)
			}
			keys := []string{fmt.Sprintf("eval:{%d}", i), fmt.Sprintf("other:{%d}", i)}
			fkeys := []string{fmt.Sprintf("fcall:{%d}", i), fmt.Sprintf("other:{%d}", i)}
			for call := range 3 {
				want, werr := rdb.Eval(ctx, c.src, keys, c.argv...).Result()
				got, gerr := rdb.FCall(ctx, name, fkeys, c.argv...).Result()
				if fmt.Sprint(want, werr) != fmt.Sprint(got, gerr) {
					t.Fatalf("call %d: as a function %v, %v; as a script %v, %v\n%s", call, got, gerr, want, werr, lib)
				}
			}
		})
	}
}

// TestLibraryRefuses: a script that declares a top-level name twice cannot be carried over with
// its meaning (a statement between the two would read the second); it is refused.
func TestLibraryRefuses(t *testing.T) {
	for _, src := range []string{
		"local a = 1\nlocal b = a\nlocal a = 2\nreturn b\n",
		"local function f() return 1 end\nlocal f = 2\nreturn f\n",
	} {
		if lib, err := lua.Library("x", src); err == nil {
			t.Errorf("%q made a library:\n%s", src, lib)
		}
	}
}

// TestEveryScriptLoads: every script of the package is a library that Redis loads (a main
// function of at most 200 locals, steps of at most 60 upvalues).
func TestEveryScriptLoads(t *testing.T) {
	srv := redistest.Fresh(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	for _, s := range lua.All {
		name, lib, ok := lua.Function(s.Hash())
		if !ok {
			t.Fatalf("no function for script %s", s.Hash())
		}
		if err := rdb.FunctionLoad(ctx, lib).Err(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if fns, err := rdb.FunctionList(ctx, redis.FunctionListQuery{}).Result(); err != nil || len(fns) != len(lua.All) {
		t.Fatalf("%d libraries loaded, want %d (%v)", len(fns), len(lua.All), err)
	}
}

// TestLibraryKept: a top-level local marked "kept between calls" keeps what a call left in it
// as a function, and starts from its value on every call as a script.
func TestLibraryKept(t *testing.T) {
	src := "local n = 0 -- kept between calls\nlocal m = 0\nn = n + 1\nm = m + 1\nreturn {n, m}\n"
	lib, err := lua.Library("kept", src)
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Fresh(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := rdb.FunctionLoad(ctx, lib).Err(); err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for call := 1; call <= 3; call++ {
		f, err := rdb.FCall(ctx, "kept", nil).Result()
		if err != nil {
			t.Fatal(err)
		}
		s, err := rdb.Eval(ctx, src, nil).Result()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(f, s))
		want = append(want, fmt.Sprintf("[%d 1] [1 1]", call))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("function, script: %v, want %v", got, want)
	}
}
