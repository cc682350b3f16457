package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/internal/redistest"
)

// TestCompare measures rateltd and its peers side by side, in this process, on the shared
// Redis, alternating: every scenario runs each of its sides once per round, the order turning
// from one round to the next, each run with a Redis client and a key prefix of its own. It
// prints, per scenario and side, the median over the rounds with the range, the ratio to each
// peer (the median and range of the ratios within a round) and the costs per operation. The
// figures of docs/performance.md ("Side by side") come from:
//
//	cd bench && go test -run '^TestCompare$' -count=1 -compare
//
// (without a package argument, so that go test prints what the test writes). Without -compare
// the test runs every side of every scenario once, for a few milliseconds, so that `go test`
// keeps it working; those figures mean nothing.
func TestCompare(t *testing.T) {
	cfg := smokeConfig
	if *compareFlag {
		if raceEnabled {
			t.Fatal("-compare measures speed: run it without -race")
		}
		cfg = compareConfig{runs: *compareRuns, warm: *compareWarm, window: *compareWindow, backlog: *compareBacklog}
	}
	srv := redistest.Server(t)
	probe := srv.Client(t)
	var scs []scenario
	for _, sc := range append(fastScenarios(), jobScenarios()...) {
		if strings.Contains(sc.group+" / "+sc.name, *compareOnly) {
			scs = append(scs, sc)
		}
	}
	out := os.Stdout
	if !*compareFlag {
		out = nil
	}
	samples := compare(t, srv, probe, cfg, scs, out)
	var table strings.Builder
	fmt.Fprintf(&table, "%s; %d runs each, alternating; %v windows (jobs: %v), backlog %d\n\n",
		environment(t, probe), cfg.runs, cfg.window, cfg.jobWindow(), cfg.backlog)
	writeTables(&table, scs, samples)
	if out == nil {
		t.Log("\n" + table.String())
		return
	}
	fmt.Fprint(out, "\n"+table.String())
	if *compareJSON != "" {
		raw, err := json.MarshalIndent(samples, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*compareJSON, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	compareFlag    = flag.Bool("compare", false, "TestCompare: measure rateltd against its peers (else a brief check that it runs)")
	compareRuns    = flag.Int("compare.runs", 5, "TestCompare: alternating runs of each side of each scenario")
	compareWarm    = flag.Duration("compare.warm", 150*time.Millisecond, "TestCompare: warm-up before each measured window")
	compareWindow  = flag.Duration("compare.window", 500*time.Millisecond, "TestCompare: measured window of a fast-path run; job runs take twice this")
	compareBacklog = flag.Int("compare.backlog", 4000, "TestCompare: jobs waiting when the workers of the processing scenario start")
	compareOnly    = flag.String("compare.only", "", "TestCompare: only the scenarios whose \"group / name\" contains this")
	compareJSON    = flag.String("compare.json", "", "TestCompare: write every run's figures to this file, as JSON")
)

// compareConfig is how long TestCompare measures.
type compareConfig struct {
	runs    int
	warm    time.Duration
	window  time.Duration
	backlog int
}

func (c compareConfig) jobWindow() time.Duration { return 2 * c.window }

var smokeConfig = compareConfig{runs: 1, warm: 10 * time.Millisecond, window: 20 * time.Millisecond, backlog: 20}

// scenario is one row group of a table: the same load on each side.
type scenario struct {
	group string // the table it is in
	name  string
	unit  string
	sides []side
}

// side is one contender in a scenario; run makes one measured run of it on e.
type side struct {
	name string
	peer bool
	run  func(t testing.TB, e *env) sample
}

// env is what one run of one side has: the shared server, a Redis client of its own whose
// commands are counted, a key prefix of its own, a client of the server for readings and
// clean-up, and how long to measure.
type env struct {
	rdb      *redis.Client
	cmds     *cmdCounter
	probe    *redis.Client
	prefix   string
	patterns []string // the keys the run leaves behind, deleted after it
	cfg      compareConfig
}

func newEnv(t testing.TB, srv *redistest.Instance, probe *redis.Client, cfg compareConfig) *env {
	e := &env{rdb: redis.NewClient(&redis.Options{Addr: srv.Addr()}), cmds: &cmdCounter{}, probe: probe,
		prefix: srv.Prefix(t), cfg: cfg}
	e.rdb.AddHook(e.cmds)
	e.patterns = []string{e.prefix + "*"}
	return e
}

// close deletes the run's keys, so that every run finds the same server.
func (e *env) close(t testing.TB) {
	e.rdb.Close()
	ctx := context.Background()
	for _, p := range e.patterns {
		iter := e.probe.Scan(ctx, 0, p, 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == 1000 {
				e.probe.Del(ctx, batch...)
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		if len(batch) > 0 {
			e.probe.Del(ctx, batch...)
		}
	}
}

// compare runs every scenario cfg.runs rounds, each side once per round, and returns the
// samples; it reports each as it comes to progress, unless nil.
func compare(t *testing.T, srv *redistest.Instance, probe *redis.Client, cfg compareConfig, scs []scenario, progress *os.File) []sample {
	var samples []sample
	for _, sc := range scs {
		for r := range cfg.runs {
			for j := range sc.sides {
				sd := sc.sides[(j+r)%len(sc.sides)]
				e := newEnv(t, srv, probe, cfg)
				s := sd.run(t, e)
				e.close(t)
				s.Scenario, s.Contender, s.Run = sc.group+" / "+sc.name, sd.name, r
				samples = append(samples, s)
				if progress != nil {
					fmt.Fprintf(progress, "%-66s %-18s run %d: %9.0f %s\n", s.Scenario, s.Contender, r+1, s.PerSecond, sc.unit)
				}
			}
		}
	}
	return samples
}

// environment names what the figures were measured on.
func environment(t testing.TB, probe *redis.Client) string {
	info, err := probe.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	version := "?"
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			version = v
		}
	}
	return fmt.Sprintf("%s, GOMAXPROCS %d, %d CPUs, Redis %s", runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), version)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func quantileMs(lat []time.Duration, q float64) float64 {
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
}
