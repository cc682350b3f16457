package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/rateltd/rateltd"
)

func noop(context.Context) (any, error) { return nil, nil }

// benchKeys names n keys of a group: group:0 … group:<n-1>.
func benchKeys(group string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = group + ":" + strconv.Itoa(i)
	}
	return keys
}

// count writes n things: "one key", "16 keys".
func count(n int, thing string) string {
	if n == 1 {
		return "one " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// warm makes one request per goroutine before the clock starts, so that connections are open
// and scripts loaded when it does.
func (r *benchRun) warm(ctx context.Context, key string) error {
	var fails failures
	spin(ctx, r.t0, r.o.goroutines, time.Minute, func(ctx context.Context, _ int) {
		if _, err := r.c.Request(ctx, key, noop); err != nil {
			fails.add(err)
		}
	})
	if err := fails.err(); err != nil {
		return fmt.Errorf("bench: warming up: %w", err)
	}
	return nil
}

// fastPath: every goroutine calls Request with a no-op fn in a loop, under a limit none reaches.
func (r *benchRun) fastPath(ctx context.Context) error {
	o := r.o
	keys := benchKeys(fastGroup, o.keys)
	if err := r.warm(ctx, keys[0]); err != nil {
		return err
	}
	lat := make([][]time.Duration, o.goroutines)
	var fails failures
	r.queued.Store(0)
	_, took := spin(ctx, r.t0, o.goroutines, o.duration, func(ctx context.Context, g int) {
		for i := g; ctx.Err() == nil; i++ {
			start := time.Now()
			if _, err := r.c.Request(ctx, keys[i%len(keys)], noop); err != nil {
				if ctx.Err() == nil {
					fails.add(err)
				}
				continue
			}
			lat[g] = append(lat[g], time.Since(start))
		}
	})
	all := merged(lat)
	fmt.Fprintf(r.out, "fast path: %s on %s, its limit far above their reach: nobody waits\n", count(o.goroutines, "goroutine"), count(o.keys, "key"))
	fmt.Fprintf(r.out, "  throughput     %.0f req/s (%d requests in %s)\n", perSecond(len(all), took), len(all), short(took))
	fmt.Fprintf(r.out, "  latency        %s\n", p50p99(all))
	if q := r.queued.Load(); q > 0 {
		fmt.Fprintf(r.out, "  waited         %d requests waited in line: the limit was reached after all\n", q)
	}
	fails.print(r.out)
	return nil
}

// queuedPath: every goroutine calls Request in a loop on one key whose limit they exceed, so
// that requests wait in line. It records when each fn started.
func (r *benchRun) queuedPath(ctx context.Context) error {
	o, l := r.o, r.o.queuedLimit()
	starts := make([][]time.Duration, o.goroutines) // fn's start, since t0
	waits := make([][]time.Duration, o.goroutines)  // from the call to fn's start
	var fails failures
	r.succeeded.Store(0)
	r.queued.Store(0)
	from, took := spin(ctx, r.t0, o.goroutines, o.duration, func(ctx context.Context, g int) {
		for ctx.Err() == nil {
			called := time.Now()
			var began time.Time
			_, err := r.c.Request(ctx, queuedKey, func(context.Context) (any, error) { began = time.Now(); return nil, nil })
			if err != nil {
				if ctx.Err() == nil {
					fails.add(err)
				}
				continue
			}
			starts[g] = append(starts[g], began.Sub(r.t0))
			waits[g] = append(waits[g], began.Sub(called))
		}
	})
	all := merged(starts)
	fmt.Fprintf(r.out, "queued path: %s on one key limited to %d/s (%s)\n", count(o.goroutines, "goroutine"), o.rate, limitString(l.WithDefaults()))
	fmt.Fprintf(r.out, "  throughput     %s\n", steadyRate(all, from+took, l.Window, o.rate))
	fmt.Fprintf(r.out, "  wait in line   %s (%d of %d requests waited)\n", p50p99(merged(waits)), r.queued.Load(), r.succeeded.Load())
	fmt.Fprintf(r.out, "  slot→start     %s\n", slotToStart(all, l, o.goroutines))
	fails.print(r.out)
	return nil
}

// steadyRate is the rate of the starts after the first window, against the limit: the first
// window lets Max start at once, which says nothing of how the line keeps up.
func steadyRate(starts []time.Duration, end, window time.Duration, limit int) string {
	if len(starts) == 0 {
		return "no request started"
	}
	from := starts[0] + window
	i, _ := slices.BinarySearch(starts, from)
	n := len(starts) - i
	if end <= from || n == 0 {
		return fmt.Sprintf("%d started, all in the first window: run longer than %s", len(starts), window)
	}
	rate := perSecond(n, end-from)
	return fmt.Sprintf("%.0f req/s after the first window: %.1f%% of the limit", rate, 100*rate/float64(limit))
}

// slotToStart is how long after its slot freed each request started, for the sliding log:
// there the i-th start may come at the earliest a window after the (i-Max)-th, so the time
// beyond that is the delay. It is read from fn's start times, so it includes the handing over
// of grants and their jitter (a negative delay, from that jitter, counts as none).
func slotToStart(starts []time.Duration, l rateltd.Limit, goroutines int) string {
	if l.Algorithm != rateltd.SlidingWindow {
		return "measured for the sliding log only (--algorithm sliding)"
	}
	if len(starts) <= l.Max {
		return "no slot was used twice: run longer"
	}
	lags := make([]time.Duration, 0, len(starts)-l.Max)
	for i := l.Max; i < len(starts); i++ {
		lags = append(lags, max(0, starts[i]-starts[i-l.Max]-l.Window))
	}
	slices.Sort(lags)
	s := p50p99(lags)
	if goroutines <= l.Max {
		s += fmt.Sprintf(" (no more goroutines than the window's %d: a slot may have waited for a caller)", l.Max)
	}
	return s
}
