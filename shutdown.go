package rateltd

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// shutdownGrace is how long Shutdown waits, once its ctx has ended and it has cancelled the
// fns and handlers still running, for them to return (and their jobs to go back to their
// line); and how long its own last writes (counts, the node's heartbeat) may take then.
const shutdownGrace = 500 * time.Millisecond

// shutdown is the state of a Client's shutdown. started is guarded by mu; err is written by
// the first Shutdown before it closes done, and read by later ones after done is closed.
type shutdown struct {
	mu      sync.Mutex
	started bool
	done    chan struct{}
	err     error
}

// running is the set of fns running now, each with the cancel of its context, so that
// Shutdown can cancel them: one map entry per fn, no goroutine. Guarded by mu: written by
// run (add, remove) and Shutdown (stop), read by Shutdown.
type running struct {
	mu      sync.Mutex
	last    uint64
	cancels map[uint64]context.CancelCauseFunc
	stopped bool
}

// add records the cancel of a fn that starts, and calls it at once when stop was called; it
// returns the id to remove.
func (r *running) add(cancel context.CancelCauseFunc) uint64 {
	r.mu.Lock()
	if r.cancels == nil {
		r.cancels = map[uint64]context.CancelCauseFunc{}
	}
	r.last++
	id := r.last
	r.cancels[id] = cancel
	stopped := r.stopped
	r.mu.Unlock()
	if stopped {
		cancel(ErrClosed)
	}
	return id
}

func (r *running) remove(id uint64) {
	r.mu.Lock()
	delete(r.cancels, id)
	r.mu.Unlock()
}

// stop cancels the context of every fn running, with cause ErrClosed, and of every fn that
// starts later.
func (r *running) stop() {
	r.mu.Lock()
	r.stopped = true
	cancels := make([]context.CancelCauseFunc, 0, len(r.cancels))
	for _, cancel := range r.cancels {
		cancels = append(cancels, cancel)
	}
	r.mu.Unlock()
	for _, cancel := range cancels {
		cancel(ErrClosed)
	}
}

func (r *running) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cancels)
}

// Shutdown stops the Client, giving the work it runs until ctx ends:
//
//   - At once, every new call (Request, RequestAsync, Do, Enqueue, Wait, Handle, Status, …)
//     fails with ErrClosed, requests waiting in line end with ErrClosed and their tickets
//     leave the line, and the processor stops granting.
//   - Running fns (of Request, on the caller's goroutine, and of RequestAsync) and durable job
//     handlers get until ctx ends to return; fn's value still reaches its caller. When ctx
//     ends first, the contexts they were given are cancelled (context.Cause is ErrClosed), and
//     Shutdown waits a short grace (half a second) for them to return.
//   - A handler that returns an error once its ctx was cancelled gives its job back to the
//     head of its line, without spending a retry. A handler that returns after Shutdown has
//     returned records nothing and calls no Observer: its lease lapses (Config.LeaseTimeout)
//     and another Client runs the job again.
//   - Shutdown returns nil once every goroutine the Client started (the processor and its
//     pub/sub listener, job runners and lease renewers, RequestAsync goroutines, admit
//     pipelines, goroutines giving a ticket or grant back) and every fn has ended. Otherwise
//     it returns an error that says what still runs and wraps ctx's error.
//
// Calling Shutdown (or Close) again is safe: it waits for the first call, within its own ctx,
// and returns the same error. The Redis client given in Config is not closed.
func (c *Client) Shutdown(ctx context.Context) error {
	if !c.made() {
		return ErrClosed // not made by New: closed from the start
	}
	s := &c.shut
	s.mu.Lock()
	first := !s.started
	if first {
		s.started = true
		s.done = make(chan struct{})
	}
	done := s.done
	s.mu.Unlock()
	if first {
		s.err = c.shutdown(ctx)
		close(done)
		return s.err
	}
	select {
	case <-done:
		return s.err
	case <-ctx.Done():
		return fmt.Errorf("rateltd: shutdown: waiting for the shutdown under way: %w", ctx.Err())
	}
}

// Close is Shutdown with a context that ends after Config.ShutdownTimeout, and returns its
// error.
func (c *Client) Close() error {
	if !c.made() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ShutdownTimeout)
	defer cancel()
	return c.Shutdown(ctx)
}

func (c *Client) shutdown(ctx context.Context) error {
	c.closed.Store(true)
	c.calls.Close()
	close(c.closing)
	c.node.Stop(ctx)
	bound := ctx
	if !c.drain(ctx) {
		// Time is up: cancel what still runs, and give it a moment to return.
		c.cfg.Logger.Warn("rateltd: shutdown: cancelling the work still running", "request_fns", c.fns.count(),
			"job_handlers", c.node.Left().Handlers, "cause", ctx.Err())
		c.fns.stop()
		c.node.CancelJobs()
		grace, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		bound = grace
		c.drain(grace)
	}
	c.observing.Close()
	c.observing.Wait(bound)
	c.node.Seal(bound)
	left := c.left()
	final := ctx
	if ctx.Err() != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		final = fctx
	}
	c.node.Finish(final)
	if left == "" {
		return nil
	}
	return fmt.Errorf("rateltd: shutdown: %s still running: %w", left, cmp.Or(ctx.Err(), context.DeadlineExceeded))
}

// drain waits until every call and every goroutine of the Client has ended, or ctx ends; it
// reports whether all have.
func (c *Client) drain(ctx context.Context) bool {
	ok := c.calls.Wait(ctx)
	return c.node.Drain(ctx) && ok
}

// left says what of the Client still runs, "" when nothing does.
func (c *Client) left() string {
	l := c.node.Left()
	fns := c.fns.count()
	var parts []string
	add := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, "1 "+one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(l.Handlers, "durable job handler", "durable job handlers")
	add(fns, "request fn", "request fns")
	add(c.calls.Running()-fns, "request waiting for Redis", "requests waiting for Redis")
	add(l.Renewers, "lease renewal", "lease renewals")
	add(l.Background, "goroutine giving a ticket back", "goroutines giving tickets back")
	add(l.Flights, "admit pipeline", "admit pipelines")
	add(l.Recording, "record of a job's end", "records of jobs' ends")
	add(c.observing.Running(), "Observer call", "Observer calls")
	if l.Loop {
		parts = append(parts, "the processor goroutine")
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
