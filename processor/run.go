package processor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// The runs of durable jobs on this node's workers: the handler, its lease, and the record of
// how the run ended.

// runJob runs one granted job on a worker, renewing its lease while the handler runs, and
// records how it ended. A job granted once the node is stopping goes back to its line without
// running; a handler that returns once the node is sealed records nothing (see Seal). The job
// was granted at grantedAt (µs of server time): the handler may settle its cost.
func (n *Node) runJob(key string, p queue.Params, g queue.GrantedJob, grantedAt int64) {
	defer n.runners.Leave()
	capped := p.Limit.Concurrency > 0
	if capped {
		defer n.freeWorker() // once the run's end has freed the key's slot (see below)
	}
	n.mu.Lock()
	h := n.jobs.handlers[g.Job.Handler]
	stopping := n.closed
	n.mu.Unlock()
	ctx, cancelCause := context.WithCancelCause(n.jobCtx)
	cancel := func() { cancelCause(nil) }
	defer cancel()
	hctx, started := n.startJob(ctx, key, g, grantedAt)
	lost := make(chan struct{})
	renewed := make(chan struct{})
	sid, now := JobID(key, g.ID), make(chan struct{}, 1)
	n.mu.Lock()
	n.jobs.runs[sid] = now
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.jobs.runs, sid)
		n.mu.Unlock()
	}()
	n.renewers.Add()
	go n.renew(ctx, key, p, g, cancelCause, now, lost, renewed)

	began := time.Now()
	var out []byte
	var err error
	grant := Grant{At: grantedAt, Queued: true, Cost: max(1, g.Job.Cost), Limit: p.Limit}
	copy(grant.ID[:], g.ID)
	if capped && n.Hold(key, grant.ID) {
		defer n.Release(key, grant.ID)
	}
	held := stopping || n.leaseHeld(ctx, key, p, g, grantedAt)
	if !stopping && held {
		out, err = callHandler(n.WithSettlement(hctx, key, grant), h, g.Job.Payload)
	}
	ran := time.Since(began)
	cancel()
	<-renewed
	if !capped {
		// The worker takes its next job while this run's end is recorded: the two round trips
		// overlap. A capped key's slot is freed only by the end, so there the worker waits.
		n.freeWorker()
	}
	if !held {
		n.observeJob(started, jobRun(key, g, queue.FinishStale, ran, err))
		return // another node runs the job, or will when the lease lapses
	}
	if !n.quiet.Enter() {
		started(jobRun(key, g, queue.FinishStale, ran, err))
		return // sealed: the lease lapses and another node runs the job again
	}
	defer n.quiet.Leave()
	select {
	case <-lost:
		n.observeJob(started, jobRun(key, g, queue.FinishStale, ran, err))
		return // another node runs it now; its result is that run's
	default:
	}
	n.observeJob(started, jobRun(key, g, n.finish(key, p, n.runEnd(key, g, stopping, out, err)), ran, err))
}

// freeWorker frees the worker of a run that has ended and asks the loop to grant the keys whose
// jobs waited for one.
func (n *Node) freeWorker() {
	n.mu.Lock()
	n.jobs.busy--
	for k := range n.jobs.starved {
		n.pending[k] = struct{}{}
	}
	clear(n.jobs.starved)
	n.poke()
	n.mu.Unlock()
}

// leaseHeld reports whether the node may start the handler of g, granted at grantedAt (µs of
// server time). A node that stood still between the grant and now for a third of a lease or more
// (a stopped or starved process: TestChaosStopped) may have let the lease lapse while another
// node took the job and ran it; it starts the handler only on a lease renewed now. A renewal that
// fails says no as well: the lease lapses and the job runs again, once, elsewhere or here.
func (n *Node) leaseHeld(ctx context.Context, key string, p queue.Params, g queue.GrantedJob, grantedAt int64) bool {
	every := n.cfg.LeaseTimeout / 3
	if n.ServerTime(time.Now())-grantedAt < every.Microseconds() {
		return true
	}
	r, err := n.renewOnce(ctx, key, p, g, every)
	return err == nil && r != queue.RenewLost
}

// runEnd is how a run that returned out and err ends: given back when the node stopped before
// the handler ran or cancelled it (CancelJobs), else done or failed.
func (n *Node) runEnd(key string, g queue.GrantedJob, stopping bool, out []byte, err error) queue.RunEnd {
	end := queue.RunEnd{ID: g.ID, Run: g.Job.Runs, Outcome: queue.RunDone, Data: out}
	switch {
	case stopping || err != nil && n.jobCtx.Err() != nil:
		end.Outcome, end.Data = queue.RunGivenBack, nil
	case err != nil:
		end.Outcome, end.Data = queue.RunFailed, failureText(err)
		end.Backoff = n.backoff(g.Job.Failures + 1)
		if d, ok := retryAfterOf(err); ok {
			end.Backoff = d
			n.PauseFor(context.Background(), key, d)
			n.Adapt(context.Background(), key, AdaptRefused)
		}
	case len(out) > n.cfg.MaxPayload:
		end.Outcome = queue.RunFailed
		end.Data = fmt.Appendf(nil, "%v: result of %d bytes, at most %d (Config.MaxPayload)", config.ErrPayloadTooLarge, len(out), n.cfg.MaxPayload)
		end.Backoff = n.backoff(g.Job.Failures + 1)
	}
	return end
}

// startJob begins a run of g, granted at grantedAt (µs of server time), with
// Options.StartJob, when set: the handler's ctx, and what to call as the run ends (nothing to
// call when StartJob is not set).
func (n *Node) startJob(ctx context.Context, key string, g queue.GrantedJob, grantedAt int64) (context.Context, func(JobRun)) {
	if n.cfg.StartJob == nil {
		return ctx, func(JobRun) {}
	}
	return n.cfg.StartJob(ctx, JobStart{ID: JobID(key, g.ID), Key: key, Handler: g.Job.Handler, Run: g.Job.Runs,
		Cost: max(1, g.Job.Cost), Waited: time.Duration(max(0, grantedAt-g.Job.Enqueued)) * time.Microsecond,
		TraceParent: g.Job.TraceParent, TraceState: g.Job.TraceState, Tenant: g.Job.Tenant})
}

// jobRun describes the run of g that ended with end, after the handler ran for ran.
func jobRun(key string, g queue.GrantedJob, end queue.Finish, ran time.Duration, err error) JobRun {
	return JobRun{Key: key, Handler: g.Job.Handler, End: end, Run: g.Job.Runs, Duration: ran, Err: err, Cost: max(1, g.Job.Cost)}
}

// observeJob tells started (startJob's end) and Options.ObserveJob, when set, how run r ended.
func (n *Node) observeJob(started func(JobRun), r JobRun) {
	started(r)
	if n.cfg.ObserveJob != nil {
		n.cfg.ObserveJob(r)
	}
}

// finish records the end of a run, trying again while the backend fails for up to a lease:
// after that the lease has lapsed and another run will take the job (FinishStale).
func (n *Node) finish(key string, p queue.Params, end queue.RunEnd) queue.Finish {
	giveUp := time.Now().Add(n.cfg.LeaseTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), backendTimeout)
		f, woken, err := n.be.FinishJob(ctx, key, p, end)
		if err == nil {
			if woken {
				n.announce(ctx, JobID(key, end.ID))
			}
			if f == queue.FinishRetry || f == queue.FinishRequeued {
				// The key's next step moved: when the retry is due, or now.
				now := n.ServerTime(time.Now())
				n.keepActive(ctx, key, now, now+end.Backoff.Microseconds()+p.Limit.QueueTimeout.Microseconds())
				n.Recheck(key)
			}
			cancel()
			return f
		}
		cancel()
		n.log.Error("rateltd: finish job", err, "key", key)
		if time.Now().After(giveUp) {
			return queue.FinishStale
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-n.jobsStop:
			return queue.FinishStale
		}
	}
}

// renew keeps the lease of g while its handler runs; when the lease is lost (this node was
// taken for dead), it cancels the handler and closes lost; when the job was cancelled
// (CancelJob), it cancels the handler with the cause ErrCancelled and stops renewing (a handler
// that does not return lets the lease lapse, and the job then ends cancelled). It renews at
// once when asked on now. It closes done when it returns, which is at once when the node is
// sealed.
func (n *Node) renew(ctx context.Context, key string, p queue.Params, g queue.GrantedJob, cancel func(error), now <-chan struct{},
	lost, done chan struct{}) {
	defer n.renewers.Leave()
	defer close(done)
	every := n.cfg.LeaseTimeout / 3
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-now:
		}
		if !n.quiet.Enter() {
			return // sealed: the lease lapses
		}
		r, err := n.renewOnce(ctx, key, p, g, every)
		n.quiet.Leave()
		switch {
		case err == nil && r != queue.RenewLost:
			last = time.Now()
			if r == queue.RenewCancelled {
				cancel(config.ErrCancelled)
			}
		case err == nil || time.Since(last) >= n.cfg.LeaseTimeout:
			close(lost)
			cancel(nil)
			return
		}
	}
}

// renewOnce renews the lease of g and keeps its key in the index, each call within every.
func (n *Node) renewOnce(ctx context.Context, key string, p queue.Params, g queue.GrantedJob, every time.Duration) (queue.Renewal, error) {
	bctx, bcancel := context.WithTimeout(ctx, every)
	r, err := n.be.RenewLease(bctx, key, p, g.ID, g.Job.Runs, n.cfg.LeaseTimeout)
	bcancel()
	if err == nil && r != queue.RenewLost {
		now := n.ServerTime(time.Now())
		bctx, bcancel := context.WithTimeout(ctx, every)
		n.keepActive(bctx, key, now, now+n.cfg.LeaseTimeout.Microseconds())
		bcancel()
	}
	return r, err
}

// backoff is the wait before the run after the failures-th failure: RetryBackoff doubled per
// failure, at most MaxRetryBackoff, less a random part of up to half.
func (n *Node) backoff(failures int) time.Duration {
	d := n.cfg.RetryBackoff
	for i := 1; i < failures && d < config.MaxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, config.MaxRetryBackoff)
	return d/2 + rand.N(d/2+1)
}

// PauseFor pauses key on every node for d (the upstream asked for it), unless it is paused as
// long already. Best effort, bounded to a second: without it a retry still waits its turn.
func (n *Node) PauseFor(ctx context.Context, key string, d time.Duration) {
	until := n.ServerTime(time.Now().Add(d))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := n.be.ExtendPause(pctx, key, until); err != nil {
		n.log.Error("rateltd: pause", err, "key", key)
	}
}

// failureText is what a failed run leaves for Wait and the dead-letter list: the error's text,
// and where a handler panicked, its stack.
func failureText(err error) []byte {
	var pe *config.PanicError
	if errors.As(err, &pe) {
		return fmt.Appendf(nil, "%v\n%s", err, pe.Stack)
	}
	return []byte(err.Error())
}

// retryAfterOf reports whether a handler's error asks to run again after a while (the
// upstream said "retry after"), and after how long.
func retryAfterOf(err error) (time.Duration, bool) {
	var ra *config.RetryAfterError
	if !errors.As(err, &ra) {
		return 0, false
	}
	return ra.After, true
}

// callHandler runs h, turning a panic into an error.
func callHandler(ctx context.Context, h Handler, payload []byte) (out []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &config.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	if h == nil {
		return nil, errors.New("rateltd: no handler")
	}
	return h(ctx, payload)
}
