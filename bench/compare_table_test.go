package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// writeTables writes one Markdown table per group of scenarios: per side, the median rate over
// the runs with its range, the ratio to each peer of the group, the latencies and the memory
// per waiting request where they were measured, and the median cost per operation.
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
		latency, memory := false, false
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
					latency = latency || s.P50 > 0
					memory = memory || s.BytesPerWaiting != 0
				}
			}
		}
		writeTable(w, g, in, peers, latency, memory, runs)
	}
}

func writeTable(w io.Writer, group string, scs []scenario, peers []string, latency, memory bool, runs map[[2]string][]sample) {
	head := []string{"scenario", "side", scs[0].unit + ", median (range)"}
	for _, p := range peers {
		head = append(head, "÷ "+p)
	}
	if latency {
		head = append(head, "p50", "p99")
	}
	if memory {
		head = append(head, "waiting", "Redis memory B/waiting")
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
			if latency && ss[0].P50 > 0 {
				row = append(row, millis(median(pick(ss, func(s sample) float64 { return s.P50 }))),
					millis(median(pick(ss, func(s sample) float64 { return s.P99 }))))
			} else if latency {
				row = append(row, "", "")
			}
			if memory {
				row = append(row, strconv.Itoa(ss[0].Waiting), medianOf(ss, "%.0f", func(s sample) float64 { return s.BytesPerWaiting }))
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
