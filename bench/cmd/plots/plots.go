package main

import (
	"cmp"
	"fmt"
	"image/color"
	"maps"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/rateltd/rateltd/bench/internal/result"
)

// Every figure is this size; at the PNG's 96 dpi, 768 × 480 pixels.
const (
	width  = 8 * vg.Inch
	height = 5 * vg.Inch
)

// point is one x of one side: the median over its runs of a figure, and the range.
type point struct{ x, mid, lo, hi float64 }

// series gathers, per side, the samples of one part by x, and reduces them to points of y.
func series(ss []result.Sample, part string, x, y func(result.Sample) float64) map[string][]point {
	byX := map[string]map[float64][]float64{}
	for _, s := range ss {
		if s.Part != part || y(s) <= 0 {
			continue
		}
		if byX[s.Contender] == nil {
			byX[s.Contender] = map[float64][]float64{}
		}
		byX[s.Contender][x(s)] = append(byX[s.Contender][x(s)], y(s))
	}
	out := map[string][]point{}
	for side, m := range byX {
		for _, xv := range slices.Sorted(maps.Keys(m)) {
			ys := slices.Sorted(slices.Values(m[xv]))
			out[side] = append(out[side], point{x: xv, mid: median(ys), lo: ys[0], hi: ys[len(ys)-1]})
		}
	}
	return out
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return sorted[n/2]
}

// sides orders the sides found: rateltd's first, then the peers, each by name; a side keeps
// its colour and mark in every figure.
func sides(ss []result.Sample) []string {
	var names []string
	for _, s := range ss {
		if !slices.Contains(names, s.Contender) {
			names = append(names, s.Contender)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(peer(a), peer(b)), cmp.Compare(a, b))
	})
	return names
}

func peer(side string) int {
	if len(side) >= 7 && side[:7] == "rateltd" {
		return 0
	}
	return 1
}

// drawAll writes every figure the samples hold the data of into dir and returns the files written.
func drawAll(ss []result.Sample, dir string) ([]string, error) {
	order := sides(ss)
	style := func(side string) int { return slices.Index(order, side) }
	goroutines := func(s result.Sample) float64 { return float64(s.Goroutines * max(s.Processes, 1)) }
	keys := func(s result.Sample) float64 { return float64(s.Keys) }
	figs := []struct {
		file string
		make func() (*plot.Plot, bool, error)
	}{
		{"throughput.png", func() (*plot.Plot, bool, error) {
			sweep := series(ss, result.PartSweep, goroutines, func(s result.Sample) float64 { return s.PerSecond })
			procs := series(ss, result.PartProcesses, goroutines, func(s result.Sample) float64 { return s.PerSecond })
			return throughput(sweep, procs, style)
		}},
		{"latency.png", func() (*plot.Plot, bool, error) {
			p50 := series(ss, result.PartSweep, goroutines, func(s result.Sample) float64 { return s.P50 })
			p99 := series(ss, result.PartSweep, goroutines, func(s result.Sample) float64 { return s.P99 })
			return latency(p50, p99, style)
		}},
		{"scale-grants.png", func() (*plot.Plot, bool, error) {
			grants := series(ss, result.PartScale, keys, func(s result.Sample) float64 { return s.PerSecond })
			p, ok, err := byKeys(grants, style, "Draining the lines of many keys: grants per second, one node", "grants/s")
			if ok {
				p.Legend.Left = false // the grants fall as the keys grow
			}
			return p, ok, err
		}},
		{"scale-memory.png", func() (*plot.Plot, bool, error) {
			mem := series(ss, result.PartScale, keys, func(s result.Sample) float64 { return s.BytesPerWaiting })
			return byKeys(mem, style, "Redis memory per waiting request", "bytes (used_memory growth / waiting)")
		}},
	}
	var written []string
	for _, f := range figs {
		p, ok, err := f.make()
		if err != nil {
			return written, fmt.Errorf("%s: %w", f.file, err)
		}
		if !ok {
			continue
		}
		path := filepath.Join(dir, f.file)
		if err := p.Save(width, height, path); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

// throughput: req/s against goroutines on one key, a line per side with its range, and the
// three-process runs as marks of their own at their total goroutines.
func throughput(sweep, procs map[string][]point, style func(string) int) (*plot.Plot, bool, error) {
	if len(sweep) == 0 {
		return nil, false, nil
	}
	p := newPlot("The fast path on one key: requests per second", "goroutines (all processes)", "requests/s")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, xTicks(sweep, procs)
	p.Y.Tick.Marker = thousands{}
	p.Legend.Top, p.Legend.Left = false, false // the lines rise to the right
	for _, side := range slices.SortedFunc(maps.Keys(sweep), byStyle(style)) {
		if err := addLine(p, side, sweep[side], style(side), false, true); err != nil {
			return nil, false, err
		}
	}
	for _, side := range slices.SortedFunc(maps.Keys(procs), byStyle(style)) {
		sc, err := plotter.NewScatter(xy(procs[side], func(pt point) float64 { return pt.mid }))
		if err != nil {
			return nil, false, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: plotutil.Color(style(side)), Radius: vg.Points(5), Shape: draw.BoxGlyph{}}
		p.Add(sc)
		p.Legend.Add(side+", 3 processes", sc)
	}
	p.Y.Min = 0
	return p, true, nil
}

// latency: p50 (solid) and p99 (dashed) against goroutines, both axes logarithmic; the
// ranges would hide the lines.
func latency(p50, p99 map[string][]point, style func(string) int) (*plot.Plot, bool, error) {
	if len(p50) == 0 {
		return nil, false, nil
	}
	p := newPlot("The fast path on one key: latency of a request (median over runs)", "goroutines", "ms (p50 solid, p99 dashed)")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, xTicks(p50, nil)
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	for _, side := range slices.SortedFunc(maps.Keys(p50), byStyle(style)) {
		if err := addLine(p, side+" p50", p50[side], style(side), false, false); err != nil {
			return nil, false, err
		}
		if err := addLine(p, side+" p99", p99[side], style(side), true, false); err != nil {
			return nil, false, err
		}
	}
	return p, true, nil
}

// byKeys: a figure against the number of active keys, logarithmic in x, from 0 in y.
func byKeys(ps map[string][]point, style func(string) int, title, ylabel string) (*plot.Plot, bool, error) {
	if len(ps) == 0 {
		return nil, false, nil
	}
	p := newPlot(title, "active keys (keys with a line)", ylabel)
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, xTicks(ps, nil)
	p.Y.Min, p.Y.Tick.Marker = 0, thousands{}
	for _, side := range slices.SortedFunc(maps.Keys(ps), byStyle(style)) {
		if err := addLine(p, side, ps[side], style(side), false, true); err != nil {
			return nil, false, err
		}
	}
	return p, true, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p
}

// addLine draws a side's medians as a line with marks, dashed or not, and with ranged its
// range over the runs as bars.
func addLine(p *plot.Plot, name string, pts []point, style int, dashed, ranged bool) error {
	if len(pts) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(xy(pts, func(pt point) float64 { return pt.mid }))
	if err != nil {
		return err
	}
	c := plotutil.Color(style)
	l.Color, s.Color, s.Shape = c, c, plotutil.Shape(style)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	}
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	if bars := errBars(pts); ranged && bars != nil {
		eb, err := plotter.NewYErrorBars(bars)
		if err != nil {
			return err
		}
		eb.Color = withAlpha(c, 0x90)
		p.Add(eb)
	}
	return nil
}

// errBars is the runs' range around each median, or nil when every point is one run.
func errBars(pts []point) *ranges {
	for _, pt := range pts {
		if pt.hi > pt.lo {
			return &ranges{pts}
		}
	}
	return nil
}

type ranges struct{ pts []point }

func (r *ranges) Len() int                    { return len(r.pts) }
func (r *ranges) XY(i int) (float64, float64) { return r.pts[i].x, r.pts[i].mid }
func (r *ranges) YError(i int) (float64, float64) {
	return r.pts[i].mid - r.pts[i].lo, r.pts[i].hi - r.pts[i].mid
}

func xy(pts []point, y func(point) float64) plotter.XYs {
	out := make(plotter.XYs, len(pts))
	for i, pt := range pts {
		out[i] = plotter.XY{X: pt.x, Y: y(pt)}
	}
	return out
}

// xTicks labels every x measured, rather than the powers of ten alone.
func xTicks(a, b map[string][]point) plot.ConstantTicks {
	var xs []float64
	for _, m := range []map[string][]point{a, b} {
		for _, pts := range m {
			for _, pt := range pts {
				xs = append(xs, pt.x)
			}
		}
	}
	slices.Sort(xs)
	var ticks plot.ConstantTicks
	for _, x := range slices.Compact(xs) {
		ticks = append(ticks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'f', -1, 64)})
	}
	return ticks
}

// thousands labels a linear axis's ticks as 25k, 50k rather than 25000.00.
type thousands struct{}

func (thousands) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" && ts[i].Value >= 1000 {
			ts[i].Label = strconv.FormatFloat(ts[i].Value/1000, 'f', -1, 64) + "k"
		} else if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

func byStyle(style func(string) int) func(a, b string) int {
	return func(a, b string) int { return cmp.Compare(style(a), style(b)) }
}

func withAlpha(c color.Color, a uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: a}
}
