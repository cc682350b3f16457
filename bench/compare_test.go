package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/bench/internal/result"
	"github.com/rateltd/rateltd/config"
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
// (without a package argument, so that go test prints what the test writes). -compare.parts
// picks the parts: the side-by-side tables, and the figures the plots of docs/img are drawn
// from (compare_sweep_test.go, compare_scale_test.go). Without -compare the test runs every
// side of every scenario of every part once, for a few milliseconds and on a few keys, so that
// `go test` keeps it working; those figures mean nothing.
func TestCompare(t *testing.T) {
	cfg := smokeConfig
	if *compareFlag {
		if raceEnabled {
			t.Fatal("-compare measures speed: run it without -race")
		}
		keys, err := parseInts(*compareScaleKeys)
		if err != nil {
			t.Fatalf("-compare.scale.keys: %v", err)
		}
		cfg = compareConfig{runs: *compareRuns, warm: *compareWarm, window: *compareWindow, backlog: *compareBacklog,
			scaleKeys: keys, waiting: *compareWaiting, scaleRuns: *compareScaleRuns, settle: 2 * time.Second,
			slotKeys: *compareSlotKeys, slotWindow: *compareSlotWindow, slotPhases: *compareSlotPhases,
			slotWarm: *compareSlotWarm}
	}
	parts := strings.Split(*compareParts, ",")
	srv := redistest.Server(t)
	probe := srv.Client(t)
	var scs []scenario
	for _, sc := range scenarios(t, parts, cfg) {
		if strings.Contains(sc.group+" / "+sc.name, *compareOnly) {
			scs = append(scs, sc)
		}
	}
	out := os.Stdout
	if !*compareFlag {
		out = nil
	}
	load := loadAverage()
	samples := compare(t, srv, probe, cfg, scs, out)
	var table strings.Builder
	fmt.Fprintf(&table, "%s; %d runs each, alternating (drains and slot → start: %d); %v windows, backlog %d; load average %s at the start, %s at the end\n\n",
		environment(t, probe), cfg.runs, cfg.scaleRuns, cfg.window, cfg.backlog, load, loadAverage())
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
	compareWindow  = flag.Duration("compare.window", config.DefaultPollInterval, "TestCompare: measured window of a fast-path run and of a job run (default: the processor's poll interval, so that each window holds one of its writes of the outcome counts, as a steady state does)")
	compareBacklog = flag.Int("compare.backlog", 4000, "TestCompare: jobs waiting when the workers of the processing scenario start")
	compareOnly    = flag.String("compare.only", "", "TestCompare: only the scenarios whose \"group / name\" contains this")
	compareJSON    = flag.String("compare.json", "", "TestCompare: write every run's figures to this file, as JSON")
	compareParts   = flag.String("compare.parts", strings.Join(allParts, ","), "TestCompare: the parts to run, comma-separated, of "+strings.Join(allParts, ","))

	compareScaleKeys  = flag.String("compare.scale.keys", "1,100,10000,100000", "TestCompare: active keys of the drains (part scale), comma-separated")
	compareWaiting    = flag.Int("compare.scale.waiting", 20_000, "TestCompare: requests waiting in a drain, spread over its keys, at least one per key")
	compareScaleRuns  = flag.Int("compare.scale.runs", 1, "TestCompare: runs of each drain (part scale) and of slot → start (part slot)")
	compareSlotKeys   = flag.Int("compare.slot.keys", 10_000, "TestCompare: keys at their limit in slot → start (part slot)")
	compareSlotWindow = flag.Duration("compare.slot.window", time.Second, "TestCompare: each key's limit in slot → start is one per this")
	compareSlotWarm   = flag.Int("compare.slot.warmup", 2, "TestCompare: windows of warm-up before slot → start measures (part slot)")
	compareSlotPhases = flag.Bool("compare.slot.phases", false, "TestCompare: in slot → start, each key's callers start at a phase of their own across the window, rather than all at once")
)

// The parts of TestCompare: the side-by-side tables (fast path and durable jobs), then the
// figures the plots are drawn from.
var allParts = []string{"tables", result.PartSweep, result.PartProcesses, result.PartScale, result.PartSlot}

// scenarios returns the scenarios of the named parts, in the order of allParts.
func scenarios(t *testing.T, parts []string, cfg compareConfig) []scenario {
	for _, p := range parts {
		if !slices.Contains(allParts, p) {
			t.Fatalf("-compare.parts: no part %q (parts: %s)", p, strings.Join(allParts, ","))
		}
	}
	var scs []scenario
	for _, p := range allParts {
		if !slices.Contains(parts, p) {
			continue
		}
		switch p {
		case "tables":
			scs = append(append(scs, fastScenarios()...), jobScenarios()...)
		case result.PartSweep:
			scs = append(scs, sweepScenarios()...)
		case result.PartProcesses:
			scs = append(scs, processScenarios()...)
		case result.PartScale:
			scs = append(scs, scaleScenarios(cfg)...)
		case result.PartSlot:
			scs = append(scs, slotScenario(cfg))
		}
	}
	return scs
}

func parseInts(list string) ([]int, error) {
	var xs []int
	for _, f := range strings.Split(list, ",") {
		x, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		xs = append(xs, x)
	}
	return xs, nil
}

// compareConfig is how long and on how many keys TestCompare measures.
type compareConfig struct {
	runs    int
	warm    time.Duration
	window  time.Duration
	backlog int

	scaleKeys  []int         // active keys of the drains
	waiting    int           // requests waiting in a drain, over its keys, at least one per key
	scaleRuns  int           // runs of each drain and of slot → start
	settle     time.Duration // how long a drain lets client buffers shrink before reading memory
	slotKeys   int           // keys at their limit in slot → start
	slotWindow time.Duration // their limit: one per slotWindow each
	slotPhases bool          // each key's callers start at a phase of their own
	slotWarm   int           // windows of warm-up before slot → start measures
}

var smokeConfig = compareConfig{runs: 1, warm: 10 * time.Millisecond, window: 40 * time.Millisecond, backlog: 20,
	scaleKeys: []int{1, 10}, waiting: 20, scaleRuns: 1, slotKeys: 10, slotWindow: 20 * time.Millisecond,
	slotPhases: true, slotWarm: 2}

// scenario is one row group of a table: the same load on each side.
type scenario struct {
	group string // the table it is in
	name  string
	unit  string
	sides []side
	runs  int // rounds; 0 means compareConfig.runs

	// Where the scenario stands in a part of the plots, copied into its samples.
	part                        string
	goroutines, processes, keys int
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
		for r := range cmp.Or(sc.runs, cfg.runs) {
			for j := range sc.sides {
				sd := sc.sides[(j+r)%len(sc.sides)]
				e := newEnv(t, srv, probe, cfg)
				s := sd.run(t, e)
				e.close(t)
				s.Scenario, s.Contender, s.Run = sc.group+" / "+sc.name, sd.name, r
				s.Part, s.Goroutines, s.Processes, s.Keys = sc.part, sc.goroutines, sc.processes, sc.keys
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

// loadAverage is the machine's load average over 1, 5 and 15 minutes, where /proc tells it:
// the figures were measured beside whatever else ran.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if err != nil || len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
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
