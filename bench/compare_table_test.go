package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// writeTables writes one Markdown table per group of scenarios: per side, the median rate over
// the runs with its range, the ratio to each peer of the group, the latencies and the memory
// per waiting request and the durable jobs' handler runs where they were measured, and the
// median cost per operation.
func writeTables(w io.Writer, scs []scenario, samples []sample) {
	runs := map[[2]string][]sample{} // scenario, side → its samples by run
	for _, s := range samples {
		k := [2]string{s.Scenario, s.Contender}
		runs[k] = append(runs[k], s)
	}
	var groups []string
	for _, sc := range scs {
		if !slices.Contains(groups, sc.group) {
			groups = append(groups, sc.group)
		}
	}
	for _, g := range groups {
		var in []scenario
		var peers []string
		var has columns
		for _, sc := range scs {
			if sc.group != g {
				continue
			}
			in = append(in, sc)
			for _, sd := range sc.sides {
				if sd.peer && !slices.Contains(peers, sd.name) {
					peers = append(peers, sd.name)
				}
				for _, s := range runs[[2]string{sc.group + " / " + sc.name, sd.name}] {
					has.latency = has.latency || s.P50 > 0
					has.memory = has.memory || s.BytesPerWaiting != 0
					has.ran = has.ran || s.Ran > 0
				}
			}
		}
		writeTable(w, g, in, peers, has, runs)
	}
}

// columns: which optional columns a group's table has (not every scenario measures latency,
// memory or handler runs).
type columns struct{ latency, memory, ran bool }

func writeTable(w io.Writer, group string, scs []scenario, peers []string, has columns, runs map[[2]string][]sample) {
	head := []string{"scenario", "side", scs[0].unit + ", median (range)"}
	for _, p := range peers {
		head = append(head, "÷ "+p)
	}
	if has.latency {
		head = append(head, "p50", "p99")
	}
	if has.memory {
		head = append(head, "waiting", "Redis memory B/waiting")
	}
	if has.ran {
		head = append(head, "handler runs/op")
	}
	head = append(head, "Redis CPU µs/op", "in commands sent µs/op", "commands/op", "Go CPU µs/op", "allocs/op")
	fmt.Fprintf(w, "%s\n\n| %s |\n|%s\n", group, strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, sc := range scs {
		full := sc.group + " / " + sc.name
		for _, sd := range sc.sides {
			ss := runs[[2]string{full, sd.name}]
			if len(ss) == 0 {
				continue
			}
			rate := pick(ss, func(s sample) float64 { return s.PerSecond })
			row := []string{sc.name, sd.name, fmt.Sprintf("%s (%s–%s)", human(median(rate)), human(slices.Min(rate)), human(slices.Max(rate)))}
			for _, p := range peers {
				row = append(row, ratios(ss, runs[[2]string{full, p}], p == sd.name))
			}
			if has.latency && ss[0].P50 > 0 {
				row = append(row, millis(median(pick(ss, func(s sample) float64 { return s.P50 }))),
					millis(median(pick(ss, func(s sample) float64 { return s.P99 }))))
			} else if has.latency {
				row = append(row, "", "")
			}
			if has.memory {
				row = append(row, strconv.Itoa(ss[0].Waiting), medianOf(ss, "%.0f", func(s sample) float64 { return s.BytesPerWaiting }))
			}
			if has.ran {
				cell := "" // blank for a scenario that ran no handlers
				if ran := median(pick(ss, func(s sample) float64 { return s.Ran })); ran > 0 {
					cell = fmt.Sprintf("%.2f", ran)
				}
				row = append(row, cell)
			}
			row = append(row, medianOf(ss, "%.1f", func(s sample) float64 { return s.RedisCPU }),
				medianOf(ss, "%.1f", func(s sample) float64 { return s.RedisCmd }),
				medianOf(ss, "%.2f", func(s sample) float64 { return s.Commands }),
				medianOf(ss, "%.1f", func(s sample) float64 { return s.GoCPU }),
				medianOf(ss, "%.0f", func(s sample) float64 { return s.Allocs }))
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}
	fmt.Fprintln(w)
}

// ratios is the median and range of side's rate over peer's, run by run: the runs of one
// round were made side by side.
func ratios(side, peer []sample, self bool) string {
	if self {
		return "—"
	}
	byRun := map[int]float64{}
	for _, s := range peer {
		byRun[s.Run] = s.PerSecond
	}
	var rs []float64
	for _, s := range side {
		if p := byRun[s.Run]; p > 0 {
			rs = append(rs, s.PerSecond/p)
		}
	}
	switch len(rs) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("%.2f", rs[0])
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", median(rs), slices.Min(rs), slices.Max(rs))
}

func pick(ss []sample, f func(sample) float64) []float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return xs
}

func medianOf(ss []sample, format string, f func(sample) float64) string {
	return fmt.Sprintf(format, median(pick(ss, f)))
}

// human writes a rate with three significant figures: 812, 8.41k, 36.2k.
func human(x float64) string {
	switch {
	case x >= 100_000:
		return fmt.Sprintf("%.0fk", x/1000)
	case x >= 10_000:
		return fmt.Sprintf("%.1fk", x/1000)
	case x >= 1000:
		return fmt.Sprintf("%.2fk", x/1000)
	}
	return fmt.Sprintf("%.0f", x)
}

// millis writes a latency given in ms: 71 µs, 1.25 ms, 12.4 ms, 1.49 s.
func millis(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0f µs", ms*1000)
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.2f s", ms/1000)
}

// TestTablesShowHandlerRuns: a group whose samples counted handler runs gets the column, with
// the median for the scenarios that counted them and a blank cell for the others; a group
// whose samples did not gets no column.
func TestTablesShowHandlerRuns(t *testing.T) {
	sides := []side{{name: "rateltd"}, {name: "asynq", peer: true}}
	scs := []scenario{
		{group: "jobs", name: "enqueue, workers up", unit: "jobs/s", sides: sides},
		{group: "jobs", name: "processing", unit: "jobs/s", sides: sides},
		{group: "fast", name: "one key", unit: "req/s", sides: sides},
	}
	var samples []sample
	for run := range 3 {
		for _, sc := range scs {
			for i, sd := range sides {
				s := sample{Scenario: sc.group + " / " + sc.name, Contender: sd.name, Run: run, PerSecond: 1000}
				if sc.name == "enqueue, workers up" {
					s.Ran = []float64{0.38, 0.06}[i] + float64(run)/100
				}
				samples = append(samples, s)
			}
		}
	}
	var b strings.Builder
	writeTables(&b, scs, samples)
	jobs, fast, _ := strings.Cut(b.String(), "fast\n")
	rows := map[string][]string{}
	for line := range strings.Lines(jobs) {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) > 2 {
			rows[cells[0]+"/"+cells[1]] = cells
		}
	}
	col := slices.Index(rows["scenario/side"], "handler runs/op")
	if col < 0 {
		t.Fatalf("no handler runs column in:\n%s", jobs)
	}
	for key, want := range map[string]string{"enqueue, workers up/rateltd": "0.39", "enqueue, workers up/asynq": "0.07",
		"processing/rateltd": "", "processing/asynq": ""} {
		if got := rows[key]; len(got) <= col || got[col] != want {
			t.Errorf("%s: handler runs cell of %q, want %q", key, got, want)
		}
	}
	if strings.Contains(fast, "handler runs") {
		t.Errorf("a group without handler runs has the column:\n%s", fast)
	}
}
