// Command plots draws the figures of docs/performance.md from what TestCompare measured:
//
//	cd bench && go test -run '^TestCompare$' -count=1 -compare -compare.parts sweep,processes,scale,slot -compare.json ../docs/img/results.json
//	go run ./cmd/plots -in ../docs/img/results.json -out ../docs/img
//
// It writes, for the parts the file holds: throughput.png (req/s against goroutines on one key,
// each side's median over the runs with its range, and the three-process runs beside them),
// latency.png (p50 and p99 against goroutines), scale-grants.png (the grants per second a drain
// reaches against the number of keys with a line) and scale-memory.png (Redis memory per
// waiting request against the same).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/rateltd/rateltd/bench/internal/result"
)

func main() {
	in := flag.String("in", "results.json", "the file TestCompare wrote with -compare.json")
	out := flag.String("out", ".", "the directory to write the PNGs to")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "plots:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	ss, err := result.ReadFile(in)
	if err != nil {
		return err
	}
	written, err := drawAll(ss, out)
	if err != nil {
		return err
	}
	if len(written) == 0 {
		return fmt.Errorf("%s holds no sample of the parts %s, %s or %s", in, result.PartSweep, result.PartProcesses, result.PartScale)
	}
	for _, f := range written {
		fmt.Println(f)
	}
	return nil
}
