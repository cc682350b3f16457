package bench

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/bench/internal/result"
)

// What TestCompare reads around each measured window: the Redis server's CPU and command
// statistics, the commands the side under test sent, and this process's CPU and allocations.

// cmdCounter is a go-redis hook that counts the commands a client sends, by name. The commands
// a script calls reach Redis's statistics too; only this count tells them from the commands
// clients sent.
type cmdCounter struct {
	byName sync.Map // command name → *atomic.Int64
}

func (c *cmdCounter) add(name string) {
	n, ok := c.byName.Load(name)
	if !ok {
		n, _ = c.byName.LoadOrStore(name, new(atomic.Int64))
	}
	n.(*atomic.Int64).Add(1)
}

func (c *cmdCounter) snapshot() map[string]int64 {
	m := map[string]int64{}
	c.byName.Range(func(k, v any) bool {
		m[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return m
}

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd.Name())
		return next(ctx, cmd)
	}
}

func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.add(cmd.Name())
		}
		return next(ctx, cmds)
	}
}

// serverStats is what INFO says of the server's work so far.
type serverStats struct {
	cpu   float64          // used_cpu_sys + used_cpu_user, seconds, all threads
	calls map[string]int64 // commandstats calls, by command (subcommands under their command)
	usec  map[string]int64 // commandstats time, same keys
}

func readServer(ctx context.Context, probe *redis.Client) (serverStats, error) {
	info, err := probe.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		return serverStats{}, err
	}
	return parseInfo(info), nil
}

// parseInfo reads used_cpu_* and the cmdstat_ lines of an INFO reply; what it does not know it
// skips.
func parseInfo(info string) serverStats {
	s := serverStats{calls: map[string]int64{}, usec: map[string]int64{}}
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "used_cpu_sys" || k == "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			s.cpu += f
		case strings.HasPrefix(k, "cmdstat_"):
			name, _, _ := strings.Cut(strings.TrimPrefix(k, "cmdstat_"), "|")
			for _, field := range strings.Split(v, ",") {
				fk, fv, _ := strings.Cut(field, "=")
				n, _ := strconv.ParseInt(fv, 10, 64)
				switch fk {
				case "calls":
					s.calls[name] += n
				case "usec":
					s.usec[name] += n
				}
			}
		}
	}
	return s
}

// sentUsec is the server time, in µs, of the commands clients sent between before and after,
// sent being how many of each the side under test sent. A script's time includes the commands
// it calls, which commandstats also counts under their own names: of each command, only the
// share its clients sent counts. The probe's own INFO calls are not sent by the side, so they
// do not count either.
func sentUsec(before, after serverStats, sent map[string]int64) float64 {
	var us float64
	for name, n := range sent {
		calls := after.calls[name] - before.calls[name]
		if n <= 0 || calls <= 0 {
			continue
		}
		share := min(1, float64(n)/float64(calls))
		us += share * float64(after.usec[name]-before.usec[name])
	}
	return us
}

// sample is one measured window of one side of one scenario, as -compare.json writes it.
type sample = result.Sample

// tally is what one process did in a measured window: its operations and their latencies,
// how long the window lasted, its CPU and allocations and the commands its clients sent.
// Worker processes send theirs as JSON.
type tally struct {
	Ops     int64            `json:"ops"`
	Elapsed time.Duration    `json:"elapsed"`
	CPU     time.Duration    `json:"cpu"`
	Allocs  uint64           `json:"allocs"`
	Sent    map[string]int64 `json:"sent"`
	Lat     []time.Duration  `json:"lat,omitempty"`
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// measure runs fn, which does the work of the window and returns how many operations it
// completed and, where it measures them, their latencies; and turns the readings around it
// into a sample. The env's counter must count the commands of every client of the side.
func (e *env) measure(t testing.TB, fn func() (int64, []time.Duration)) sample {
	t.Helper()
	before, err := readServer(context.Background(), e.probe)
	if err != nil {
		t.Fatal(err)
	}
	tl := e.local(fn)
	after, err := readServer(context.Background(), e.probe)
	if err != nil {
		t.Fatal(err)
	}
	return sampleOf(t, before, after, tl)
}

// local runs fn in this process and tallies what it did.
func (e *env) local(fn func() (int64, []time.Duration)) tally {
	sent, allocs, cpu := e.cmds.snapshot(), mallocs(), processCPU()
	at := time.Now()
	ops, lat := fn()
	tl := tally{Ops: ops, Lat: lat, Elapsed: time.Since(at)}
	tl.CPU, tl.Allocs, tl.Sent = processCPU()-cpu, mallocs()-allocs, e.cmds.snapshot()
	for name, n := range tl.Sent {
		tl.Sent[name] = n - sent[name]
	}
	return tl
}

// merge adds up the tallies of processes that worked side by side in one window, which lasted
// as long as the longest of theirs.
func merge(ts []tally) tally {
	m := tally{Sent: map[string]int64{}}
	for _, tl := range ts {
		m.Ops += tl.Ops
		m.Elapsed = max(m.Elapsed, tl.Elapsed)
		m.CPU += tl.CPU
		m.Allocs += tl.Allocs
		for name, n := range tl.Sent {
			m.Sent[name] += n
		}
		m.Lat = append(m.Lat, tl.Lat...)
	}
	return m
}

// sampleOf turns a window's tally and the server's readings around it into a sample.
func sampleOf(t testing.TB, before, after serverStats, tl tally) sample {
	t.Helper()
	if tl.Ops <= 0 {
		t.Fatalf("%s: no operation completed in %v", t.Name(), tl.Elapsed)
	}
	var nsent int64
	for _, n := range tl.Sent {
		nsent += n
	}
	per := func(x float64) float64 { return x / float64(tl.Ops) }
	s := sample{Ops: tl.Ops, Seconds: tl.Elapsed.Seconds(), PerSecond: float64(tl.Ops) / tl.Elapsed.Seconds(),
		RedisCPU: per((after.cpu - before.cpu) * 1e6), RedisCmd: per(sentUsec(before, after, tl.Sent)),
		Commands: per(float64(nsent)), GoCPU: per(float64(tl.CPU.Microseconds())), Allocs: per(float64(tl.Allocs))}
	if len(tl.Lat) > 0 {
		s.P50, s.P99 = quantileMs(tl.Lat, 0.50), quantileMs(tl.Lat, 0.99)
	}
	return s
}

// TestSentUsec: of a script's run, only the script's own entry counts, not the commands it
// called; a command both sent and called by scripts counts for the share that was sent.
func TestSentUsec(t *testing.T) {
	before := parseInfo("# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.000000\r\nused_cpu_sys_children:9.000000\r\n" +
		"# Commandstats\r\ncmdstat_evalsha:calls=10,usec=100,usec_per_call=10.00\r\ncmdstat_get:calls=4,usec=8,usec_per_call=2.00\r\n")
	after := parseInfo("# CPU\r\nused_cpu_sys:1.750000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.500000\r\n" +
		"# Commandstats\r\ncmdstat_evalsha:calls=20,usec=300,usec_per_call=15.00\r\ncmdstat_get:calls=24,usec=48,usec_per_call=2.00\r\n" +
		"cmdstat_zadd:calls=10,usec=30,usec_per_call=3.00\r\ncmdstat_client|setname:calls=1,usec=1,usec_per_call=1.00\r\n")
	if got := after.cpu - before.cpu; got < 0.4999 || got > 0.5001 {
		t.Errorf("cpu: %v s, want 0.5 (children not counted)", got)
	}
	// 10 EVALSHA (200µs, with the ZADDs they called), and 5 of the 20 GETs (40µs).
	sent := map[string]int64{"evalsha": 10, "get": 5, "client": 1}
	if got := sentUsec(before, after, sent); got != 200+10+1 {
		t.Errorf("sentUsec = %v, want 211", got)
	}
}
