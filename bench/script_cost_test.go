package bench

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/lua"
)

// BenchmarkScriptCost: where a lone admit's Redis time goes. Each part runs one caller's
// calls on a private Redis and reports Redis's own time per call (INFO commandstats, usec
// per call of EVALSHA): "return" a script that returns at once, with no keys; "args" the same
// with the KEYS and ARGV of an admit (eleven key names, the limit and the ticket); "prelude/…"
// the admit script cut at the marks of preludeMarks, up to just before its fast path begins
// (the rate-limit and pause helpers defined, the limit bound, then return); "admit/script" and
// "admit/function" the admit script granting at once (sliding window) as EVALSHA and as FCALL
// of its function (lua.Library); "admit" a request granted at once through the client (which
// calls the function);
// "redis_rate" go-redis/redis_rate's Allow, for comparison.
func BenchmarkScriptCost(b *testing.B) {
	src, ok := lua.Source(lua.Admit.Hash())
	if !ok {
		b.Fatal("no admit script source")
	}
	// The admit script cut at each mark (after it, for bind's call), returning there.
	var preludes []*redis.Script
	for _, m := range preludeMarks {
		i := strings.Index(src, m.text)
		if i < 0 {
			b.Fatalf("no %q in the admit script", m.text)
		}
		if m.after {
			i += len(m.text)
		}
		preludes = append(preludes, redis.NewScript(src[:i]+"\ndo return 1 end\n"))
	}
	ret := redis.NewScript("return 1")
	keys := []string{"rateltd:{k}:w", "rateltd:{k}:q:0", "rateltd:{k}:q:1", "rateltd:{k}:q:2", "rateltd:{k}:q:3",
		"rateltd:{k}:granted", "rateltd:{k}:paused", "rateltd:{k}:stats", "rateltd:{k}:dlq", "rateltd:{k}:evicted", "rateltd:{k}:fair"}
	ticket := strings.Repeat("t", 70)
	argv := func(i int) []any {
		return []any{0, 50_000_000, 1_000_000, 0, 60_000, 0, ticket, "id" + strconv.Itoa(i), 1, time.Now().UnixMicro() + 30_000_000, 1000, 0, 0}
	}
	run := func(b *testing.B, call func(ctx context.Context, rdb *redis.Client, i int) error) {
		srv := redistest.Fresh(b)
		rdb := srv.Client(b)
		ctx := context.Background()
		if err := call(ctx, rdb, -1); err != nil { // loads what it needs
			b.Fatal(err)
		}
		before := evalshaStats(b, rdb)
		b.ResetTimer()
		for i := range b.N {
			if err := call(ctx, rdb, i); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		after := evalshaStats(b, rdb)
		if calls := after[0] - before[0]; calls > 0 {
			b.ReportMetric(float64(after[1]-before[1])/float64(calls), "redis-µs/call")
		}
	}
	b.Run("return", func(b *testing.B) {
		run(b, func(ctx context.Context, rdb *redis.Client, _ int) error { return ret.Run(ctx, rdb, nil).Err() })
	})
	b.Run("args", func(b *testing.B) {
		run(b, func(ctx context.Context, rdb *redis.Client, i int) error {
			return ret.Run(ctx, rdb, keys, argv(i)...).Err()
		})
	})
	for i, m := range preludeMarks {
		b.Run("prelude/"+m.name, func(b *testing.B) {
			run(b, func(ctx context.Context, rdb *redis.Client, n int) error {
				return preludes[i].Run(ctx, rdb, keys, argv(n)...).Err()
			})
		})
	}
	// Closures made on every call: 36 functions each capturing 10 of 40 chunk-level locals (as
	// limits.lua's helpers capture its state), the same reading the 40 from one table, and the
	// 40 locals alone.
	for _, shape := range []string{"locals", "table", "none"} {
		s := redis.NewScript(capturesScript(shape))
		b.Run("captures/"+shape, func(b *testing.B) {
			run(b, func(ctx context.Context, rdb *redis.Client, _ int) error { return s.Run(ctx, rdb, nil).Err() })
		})
	}
	// The admit script itself, granted at once (sliding window), as EVALSHA of the script and as
	// FCALL of its function (lua.Library): what running the script from its first line costs.
	admitArgv := func(i int) []any {
		return []any{0, 50_000_000, 1_000_000, 0, 60_000, 0, ticket, strings.Repeat("i", 8) + strconv.Itoa(100000000+i), 1,
			time.Now().UnixMicro() + 30_000_000, 1000, 0, 0}
	}
	b.Run("admit/script", func(b *testing.B) {
		run(b, func(ctx context.Context, rdb *redis.Client, i int) error {
			return lua.Admit.Run(ctx, rdb, keys, admitArgv(i)...).Err()
		})
	})
	fn, lib, _ := lua.Function(lua.Admit.Hash())
	b.Run("admit/function", func(b *testing.B) {
		run(b, func(ctx context.Context, rdb *redis.Client, i int) error {
			if i < 0 {
				if err := rdb.FunctionLoadReplace(ctx, lib).Err(); err != nil {
					return err
				}
			}
			return rdb.FCall(ctx, fn, keys, admitArgv(i)...).Err()
		})
	})
	b.Run("admit", func(b *testing.B) {
		var c *rateltd.Client
		run(b, func(ctx context.Context, rdb *redis.Client, _ int) error {
			if c == nil {
				var err error
				if c, err = rateltd.New(rateltd.Config{Redis: rdb, Default: rateltd.Limit{Max: 50_000_000, Window: time.Second}}); err != nil {
					return err
				}
				b.Cleanup(func() { c.Close() })
			}
			_, err := c.Request(ctx, "k", noop)
			return err
		})
	})
	b.Run("redis_rate", func(b *testing.B) {
		var lim *redis_rate.Limiter
		run(b, func(ctx context.Context, rdb *redis.Client, _ int) error {
			if lim == nil {
				lim = redis_rate.NewLimiter(rdb)
			}
			_, err := lim.Allow(ctx, "k", redis_rate.PerSecond(50_000_000))
			return err
		})
	})
}

// capturesScript is BenchmarkScriptCost's synthetic script of the given shape: "locals" 40
// chunk-level locals and 36 functions each capturing 10 of them; "table" the same functions
// reading the 40 as fields of one table; "none" the 40 locals and no function.
func capturesScript(shape string) string {
	var b strings.Builder
	name := func(i int) string { return "v" + strconv.Itoa(i%40) }
	if shape == "table" {
		b.WriteString("local S = {")
		for i := range 40 {
			b.WriteString(name(i) + " = " + strconv.Itoa(i) + ", ")
		}
		b.WriteString("}\n")
	} else {
		b.WriteString("local v0")
		for i := 1; i < 40; i++ {
			b.WriteString(", " + name(i))
		}
		b.WriteString(" = 0")
		for i := 1; i < 40; i++ {
			b.WriteString(", " + strconv.Itoa(i))
		}
		b.WriteString("\n")
	}
	for f := 0; shape != "none" && f < 36; f++ {
		b.WriteString("local function f" + strconv.Itoa(f) + "() return 0")
		for k := range 10 {
			v := name(f*7 + k)
			if shape == "table" {
				v = "S." + v
			}
			b.WriteString(" + " + v)
		}
		b.WriteString(" end\n")
	}
	b.WriteString("return 1\n")
	return b.String()
}

// preludeMarks cut the admit script into the parts BenchmarkScriptCost times: limits.lua's
// state declared; then bound to the key and its limit (bind); all of limits.lua (its helpers
// defined); and everything before the fast path (pause.lua, quiet.lua, shadow.lua too).
var preludeMarks = []struct {
	name, text string
	after      bool
}{
	{"declared", "local function bind()", false},
	{"bound", "\nbind()\n", true},
	{"limits", "-- pause.lua:", false},
	{"all", "-- admit_fast.lua", false},
}

// evalshaStats returns the calls and usec of EVALSHA and FCALL, summed, from INFO commandstats.
func evalshaStats(b *testing.B, rdb *redis.Client) [2]int64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var out [2]int64
	for _, line := range strings.Split(info, "\r\n") {
		v, ok := strings.CutPrefix(line, "cmdstat_evalsha:")
		if !ok {
			if v, ok = strings.CutPrefix(line, "cmdstat_fcall:"); !ok {
				continue
			}
		}
		for _, kv := range strings.Split(v, ",") {
			k, n, _ := strings.Cut(kv, "=")
			x, _ := strconv.ParseInt(n, 10, 64)
			switch k {
			case "calls":
				out[0] += x
			case "usec":
				out[1] += x
			}
		}
	}
	return out
}
