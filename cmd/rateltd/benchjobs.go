package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of the durable-jobs section. Each job's payload names its phase, so that the handler
// files its start under it.
const (
	phaseWarm byte = iota // one job before the clock starts
	phaseOpen             // producers enqueue without waiting for the jobs
	phaseLoop             // each producer enqueues a job and waits for its result
	phases
)

// jobStats is what the bench's handler records.
type jobStats struct {
	t0 time.Time

	mu     sync.Mutex
	starts [phases][]time.Duration // the handler's starts since t0; guarded by mu
	lat    [phases][]time.Duration // from before Enqueue to the handler's start; guarded by mu

	ran [phases]atomic.Int64 // jobs started: written by the handler, read by the producers
}

// handle is the bench's handler: it records when it started, and does nothing else.
func (s *jobStats) handle(_ context.Context, p []byte) ([]byte, error) {
	now := time.Since(s.t0)
	if len(p) != 9 || p[0] >= phases {
		return nil, fmt.Errorf("bench: a payload of %d bytes is not the bench's", len(p))
	}
	at := time.Duration(binary.BigEndian.Uint64(p[1:]))
	s.mu.Lock()
	s.starts[p[0]] = append(s.starts[p[0]], now)
	s.lat[p[0]] = append(s.lat[p[0]], now-at)
	s.mu.Unlock()
	s.ran[p[0]].Add(1)
	return nil, nil
}

// payload is a job of phase, enqueued now.
func (s *jobStats) payload(phase byte) []byte {
	p := make([]byte, 9)
	p[0] = phase
	binary.BigEndian.PutUint64(p[1:], uint64(time.Since(s.t0)))
	return p
}

// sorted returns the samples of one phase, sorted.
func (s *jobStats) sorted(of *[phases][]time.Duration, phase byte) []time.Duration {
	s.mu.Lock()
	out := slices.Clone(of[phase])
	s.mu.Unlock()
	slices.Sort(out)
	return out
}

// durableJobs: producers enqueue without waiting (the enqueue rate), the line drains (the
// processing rate), then each producer enqueues a job and waits for its result (the time from
// enqueue to the handler's start). This Client runs the jobs.
func (r *benchRun) durableJobs(ctx context.Context) error {
	o := r.o
	s := &jobStats{t0: r.t0}
	if err := r.c.Handle(benchJob, s.handle); err != nil {
		return err
	}
	keys := benchKeys(jobsGroup, o.keys)
	id, err := r.c.Enqueue(ctx, keys[0], benchJob, s.payload(phaseWarm))
	if err == nil {
		_, err = r.c.Wait(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("bench: warming up: %w", err)
	}
	fmt.Fprintf(r.out, "durable jobs: %s on %s; this node runs them on %s, with a handler that does nothing\n",
		count(o.goroutines, "producer"), count(o.keys, "key"), count(o.goroutines, "worker"))
	var fails failures
	enq := r.enqueueOpen(ctx, s, keys, &fails)
	fmt.Fprintf(r.out, "  enqueue        %.0f jobs/s (%d in %s)\n", perSecond(enq.n, enq.took), enq.n, short(enq.took))
	if enq.held {
		fmt.Fprintf(r.out, "                 then %d jobs waited, the most the bench lets wait: held back to the workers' pace\n", maxBacklog)
	}
	waiting := enq.total - int(s.ran[phaseOpen].Load())
	left := r.drain(ctx, s, enq.total)
	fmt.Fprintf(r.out, "  processing     %s\n", processing(s.sorted(&s.starts, phaseOpen), waiting, o.goroutines))
	if left > 0 {
		fmt.Fprintf(r.out, "                 %d jobs still waiting after %s more: dropped (Reset) before going on\n", left, o.duration)
		for _, k := range keys {
			if err := r.c.Reset(ctx, k); err != nil {
				return err
			}
		}
	}
	rate := r.enqueueWait(ctx, s, keys, &fails)
	fmt.Fprintf(r.out, "  enqueue→start  %s (each producer enqueuing a job and waiting for its result: %.0f jobs/s)\n",
		p50p99(s.sorted(&s.lat, phaseLoop)), rate)
	fails.print(r.out)
	return nil
}

// openEnqueue is what enqueueOpen did: it enqueued total jobs; the rate is n in took, the time
// until the line first held maxBacklog jobs, when held, since enqueuing was held back from then.
type openEnqueue struct {
	total, n int
	took     time.Duration
	held     bool
}

// enqueueOpen enqueues jobs from every producer for the section's duration, as fast as
// Enqueue returns, holding back while maxBacklog jobs wait.
func (r *benchRun) enqueueOpen(ctx context.Context, s *jobStats, keys []string, fails *failures) openEnqueue {
	var enqueued atomic.Int64
	var heldAt, heldN atomic.Int64 // when the line first held maxBacklog jobs (0: never), and how many were enqueued then
	start := time.Now()
	_, took := spin(ctx, r.t0, r.o.goroutines, r.o.duration, func(ctx context.Context, g int) {
		for i := g; ctx.Err() == nil; i++ {
			if n := enqueued.Load(); n-s.ran[phaseOpen].Load() >= maxBacklog {
				if heldAt.CompareAndSwap(0, int64(time.Since(start))) {
					heldN.Store(n)
				}
				pause(ctx, time.Millisecond)
				continue
			}
			if _, err := r.c.Enqueue(ctx, keys[i%len(keys)], benchJob, s.payload(phaseOpen)); err != nil {
				if ctx.Err() == nil {
					fails.add(err)
				}
				continue
			}
			enqueued.Add(1)
		}
	})
	e := openEnqueue{total: int(enqueued.Load()), n: int(enqueued.Load()), took: took}
	if at := heldAt.Load(); at > 0 {
		e.n, e.took, e.held = int(heldN.Load()), time.Duration(at), true
	}
	return e
}

// drain waits up to the section's duration for the enqueued jobs to start, and returns how
// many have not.
func (r *benchRun) drain(ctx context.Context, s *jobStats, enqueued int) int {
	deadline := time.Now().Add(r.o.duration)
	for {
		// An Enqueue cut short by the section's end may have queued its job all the same.
		left := enqueued - int(s.ran[phaseOpen].Load())
		if left <= 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return max(0, left)
		}
		pause(ctx, 5*time.Millisecond)
	}
}

// processing is the rate at which the handler started the jobs enqueued without waiting.
func processing(starts []time.Duration, waiting, workers int) string {
	if len(starts) < 2 {
		return fmt.Sprintf("%d jobs ran: too few for a rate", len(starts))
	}
	span := starts[len(starts)-1] - starts[0]
	s := fmt.Sprintf("%.0f jobs/s (%d from the first start to the last, %s; %d waited when enqueuing stopped)",
		perSecond(len(starts)-1, span), len(starts), short(span), max(0, waiting))
	if waiting <= workers {
		s += "\n                 the workers kept pace with enqueuing: this is not the most they can run"
	}
	return s
}

// enqueueWait has every producer enqueue a job and wait for its result, in a loop, for the
// section's duration, and returns the jobs per second that made.
func (r *benchRun) enqueueWait(ctx context.Context, s *jobStats, keys []string, fails *failures) float64 {
	var done atomic.Int64
	_, took := spin(ctx, r.t0, r.o.goroutines, r.o.duration, func(ctx context.Context, g int) {
		for i := g; ctx.Err() == nil; i++ {
			id, err := r.c.Enqueue(ctx, keys[i%len(keys)], benchJob, s.payload(phaseLoop))
			if err == nil {
				_, err = r.c.Wait(ctx, id)
			}
			if err != nil {
				if ctx.Err() == nil {
					fails.add(err)
				}
				continue
			}
			done.Add(1)
		}
	})
	return perSecond(int(done.Load()), took)
}

// pause sleeps for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
