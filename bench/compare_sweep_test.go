package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/bench/internal/result"
)

// The fast path on one key as the goroutines grow, for the plots of req/s and latency against
// goroutines; and from three processes at once, where the Go side of the work is spread over
// three runtimes. The sides are those of the fast-path tables, less the fixed window.

var sweepGoroutines = []int{1, 4, 16, 64, 128, 256, 512}

func sweepScenarios() []scenario {
	sides := fastSidesNamed("rateltd sliding", "rateltd token", "redis_rate", "ulule")
	var scs []scenario
	for _, g := range sweepGoroutines {
		sc := scenario{group: "sweep, one key", name: goroutines(g), unit: "req/s",
			part: result.PartSweep, goroutines: g, keys: 1}
		for _, fs := range sides {
			sc.sides = append(sc.sides, side{name: fs.name, peer: fs.peer, run: func(t testing.TB, e *env) sample {
				return runFast(t, e, fs.open, g, 1)
			}})
		}
		scs = append(scs, sc)
	}
	return scs
}

func goroutines(g int) string {
	if g == 1 {
		return "1 goroutine"
	}
	return fmt.Sprintf("%d goroutines", g)
}

// fastSidesNamed returns the fast-path sides of these names, in this order.
func fastSidesNamed(names ...string) []fastSide {
	var out []fastSide
	for _, name := range names {
		for _, fs := range fastSides {
			if fs.name == name {
				out = append(out, fs)
			}
		}
	}
	if len(out) != len(names) {
		panic(fmt.Sprintf("bench: fast-path sides %q: some are unknown", names))
	}
	return out
}

// The shape of the multi-process scenario.
const (
	sweepProcs      = 3
	sweepProcsPerGo = 16
)

func processScenarios() []scenario {
	sc := scenario{group: "three processes, one key", name: fmt.Sprintf("%d processes × %d goroutines", sweepProcs, sweepProcsPerGo),
		unit: "req/s", part: result.PartProcesses, goroutines: sweepProcsPerGo, processes: sweepProcs, keys: 1}
	for _, fs := range fastSidesNamed("rateltd sliding", "rateltd token", "redis_rate") {
		sc.sides = append(sc.sides, side{name: fs.name, peer: fs.peer, run: func(t testing.TB, e *env) sample {
			return runProcesses(t, e, fs.name)
		}})
	}
	return []scenario{sc}
}

// runProcesses starts the side in sweepProcs worker processes on one key of the run's prefix,
// lets them warm up, then has them measure one window at once. Each sends back its tally; the
// server's readings are taken around the window here.
func runProcesses(t testing.TB, e *env, name string) sample {
	t.Helper()
	dir := t.TempDir()
	type proc struct {
		out   *bufio.Scanner
		in    io.WriteCloser
		tally string
	}
	var ps []proc
	for i := range sweepProcs {
		p := proc{tally: filepath.Join(dir, strconv.Itoa(i)+".json")}
		_, p.out, p.in = startWorker(t, "compare", "RATELTD_ADDR="+e.rdb.Options().Addr, "RATELTD_PREFIX="+e.prefix,
			"RATELTD_SIDE="+name, "RATELTD_G="+strconv.Itoa(sweepProcsPerGo), "RATELTD_WARM="+e.cfg.warm.String(),
			"RATELTD_WINDOW="+e.cfg.window.String(), "RATELTD_OUT="+p.tally)
		ps = append(ps, p)
	}
	for i, p := range ps {
		awaitLine(t, i, p.out, "ready")
	}
	before, err := readServer(t.Context(), e.probe)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if _, err := io.WriteString(p.in, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	var ts []tally
	for i, p := range ps {
		awaitLine(t, i, p.out, "done")
		raw, err := os.ReadFile(p.tally)
		if err != nil {
			t.Fatal(err)
		}
		var tl tally
		if err := json.Unmarshal(raw, &tl); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tl)
	}
	after, err := readServer(t.Context(), e.probe)
	if err != nil {
		t.Fatal(err)
	}
	return sampleOf(t, before, after, merge(ts))
}

// awaitLine reads worker i's output until a line that is want; anything else it printed
// before ending is the failure's message.
func awaitLine(t testing.TB, i int, out *bufio.Scanner, want string) {
	t.Helper()
	var said []string
	for out.Scan() {
		if out.Text() == want {
			return
		}
		said = append(said, out.Text())
	}
	t.Fatalf("worker %d ended before %q: %s", i, want, strings.Join(said, "\n"))
}

// compareWorker is TestBenchWorker's mode "compare": it opens the fast-path side
// RATELTD_SIDE on one key of RATELTD_PREFIX, drives it from RATELTD_G goroutines for
// RATELTD_WARM and prints "ready"; at a line on its input it measures one window of
// RATELTD_WINDOW, writes its tally to RATELTD_OUT as JSON and prints "done".
func compareWorker(t *testing.T) {
	g, err := strconv.Atoi(os.Getenv("RATELTD_G"))
	if err != nil {
		t.Fatal(err)
	}
	warm, err := time.ParseDuration(os.Getenv("RATELTD_WARM"))
	if err != nil {
		t.Fatal(err)
	}
	window, err := time.ParseDuration(os.Getenv("RATELTD_WINDOW"))
	if err != nil {
		t.Fatal(err)
	}
	fs := fastSidesNamed(os.Getenv("RATELTD_SIDE"))[0]
	e := &env{rdb: redis.NewClient(&redis.Options{Addr: os.Getenv("RATELTD_ADDR")}), cmds: &cmdCounter{},
		prefix: os.Getenv("RATELTD_PREFIX"), cfg: compareConfig{warm: warm, window: window}}
	e.rdb.AddHook(e.cmds)
	defer e.rdb.Close()
	chk, closeSide := fs.open(t, e, 1)
	defer closeSide()
	if _, _, err := drive(g, warm, 1, chk); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	var werr error
	tl := e.local(func() (int64, []time.Duration) {
		n, lat, err := drive(g, window, 1, chk)
		werr = err
		return n, lat
	})
	if werr != nil {
		t.Fatal(werr)
	}
	raw, err := json.Marshal(tl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv("RATELTD_OUT"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println("done")
}
