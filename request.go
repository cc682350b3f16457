package rateltd

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/processor"
	"github.com/rateltd/rateltd/queue"
)

// Option adjusts one request.
type Option func(*options)

type options struct {
	priority Priority
	timeout  time.Duration
	retries  int
	jobName  string
	runAt    time.Time            // WithRunAt's, or now plus WithDelay's; zero: now
	cost     int64                // WithCost's; 0 when not given
	tenant   string               // WithTenant's; empty when not given
	badCost  bool                 // WithCost was given a cost below 1
	decided  func(queue.Decision) // WithDecision's f, given the root's Decision
}

// costOf is the request's cost: WithCost's, or 1.
func (o options) costOf() int64 {
	if o.cost == 0 {
		return 1
	}
	return o.cost
}

// WithPriority sets the request's priority. Defaults to PriorityNormal, which is also the
// zero value of Priority.
func WithPriority(p Priority) Option { return func(o *options) { o.priority = p } }

// WithTimeout bounds how long the request may wait in line, below the key's QueueTimeout and
// the ctx deadline. Defaults to the key's QueueTimeout.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithMaxRetries bounds how many times work runs again after it failed. Defaults to 0.
//
// For a request (Request, RequestAsync, Do): fn runs again up to n times when it returns a
// RetryAfterError, from the head of its line once the pause ends, within the request's
// deadline; any other error is returned at once, and so is a RetryAfterError past n.
//
// For a durable job (Enqueue, Call): the handler runs again up to n times after it returns
// any error, after a backoff (Config.RetryBackoff, doubling); a RetryAfterError pauses the key
// and spends one retry. After the last, the job is dead-lettered and Wait returns a *JobError.
func WithMaxRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithCost sets what the request counts against the rates of its key's limit that count cost
// units (Limit.Units, Rate.Units): tokens of an LLM call, say, as estimated before it. Rates
// that count requests count it as 1 whatever its cost. A cost more than some such rate could
// ever admit (its Max, or its Burst for TokenBucket) fails at once with ErrCostTooHigh. Inside
// fn (or a handler), Settle says what the call really cost. n must be at least 1. Defaults
// to 1.
func WithCost(n int) Option {
	return func(o *options) { o.cost, o.badCost = int64(n), n < 1 }
}

// WithTenant says whose request or durable job this is within its key: while several tenants
// have requests waiting in the key's line, each is served in turn, weighted by
// Limit.TenantWeights (deficit round robin by cost), and first come first served within a
// tenant, so that one tenant's flood delays another's request by at most one round, not by the
// flood. Priorities stay strict above the tenants: a higher priority is served first. A tenant
// is 1 to 64 bytes without control characters, ',', '=', '{' or '}'. Without WithTenant a
// request is served as before (as the tenant "" when others wait with tenants).
func WithTenant(t string) Option { return func(o *options) { o.tenant = t } }

// WithJobName names a durable job within its key, making Enqueue idempotent: the job's id
// follows from the key and the name, and enqueuing a job of the same key and name while one
// waits, runs or has its result kept (Config.ResultTTL) queues nothing and returns the same
// id. Safe to retry after ErrUnavailable. Requests ignore it.
func WithJobName(name string) Option { return func(o *options) { o.jobName = name } }

// WithDelay has a durable job join its key's line d from now rather than at once: until then
// it is kept in Redis (it survives restarts like any other job, and Status counts it in
// JobsScheduled); then it joins the line at its priority, behind the jobs that joined before
// it and ahead of those scheduled later, and its time in line (WithTimeout or the key's
// QueueTimeout) counts from then. d ≤ 0 means now. Requests ignore it; EnqueueMany refuses it
// (ErrInvalidConfig).
func WithDelay(d time.Duration) Option {
	return func(o *options) { o.runAt = time.Now().Add(d) }
}

// WithRunAt is WithDelay with a time: the job joins its line at t (by this host's clock, set
// against Redis's). A t that is past means now.
func WithRunAt(t time.Time) Option { return func(o *options) { o.runAt = t } }

// WithDecision has a request report how its admission went, as Check would have answered
// just after it, with no Redis call of its own: the admission's reply carries it. f is called
// when the admission decided at once: granted, with Allowed set and the Remaining and
// ResetAfter its own grant left, before fn runs; or refused (ErrQueueFull,
// ErrWouldExceedDeadline), with RetryAfter until the earliest start the line allowed. It is
// not called for a request that waited in line (its admission's reading would be stale by its
// turn), nor when Redis could not be asked; a request retried after a RetryAfterError reports
// each admission. f runs on the goroutine that runs fn. Defaults to nil: nothing reported.
// Durable jobs ignore it.
func WithDecision(f func(Decision)) Option {
	return func(o *options) {
		o.decided = nil
		if f != nil {
			o.decided = func(d queue.Decision) { f(Decision(d)) }
		}
	}
}

func apply(opts []Option) (options, error) {
	if len(opts) == 0 {
		return options{}, nil // its priority is PriorityNormal, the zero Priority
	}
	var o options // escapes to the options' funcs: allocated only when there are some
	for _, opt := range opts {
		opt(&o)
	}
	if !o.priority.Valid() {
		return o, fmt.Errorf("%w: WithPriority: unknown priority %d", ErrInvalidConfig, int(o.priority))
	}
	if o.timeout < 0 {
		return o, fmt.Errorf("%w: WithTimeout: must not be negative, got %v", ErrInvalidConfig, o.timeout)
	}
	if o.retries < 0 {
		return o, fmt.Errorf("%w: WithMaxRetries: must not be negative, got %d", ErrInvalidConfig, o.retries)
	}
	if o.badCost || o.cost > 1<<53 {
		return o, fmt.Errorf("%w: WithCost: must be from 1 to 2^53, got %d", ErrInvalidConfig, o.cost)
	}
	if o.tenant != "" && !config.ValidTenant(o.tenant) {
		return o, fmt.Errorf("%w: WithTenant: %q: 1 to %d bytes, no control characters, ',', '=', '{' or '}'", ErrInvalidConfig, o.tenant, config.MaxTenantLen)
	}
	return o, nil
}

// Result is what RequestAsync delivers: fn's value and error, or the error that kept fn from
// running.
type Result struct {
	Value any
	Err   error
}

// Request runs fn once the rate limit of key allows: at once when the key is under its limit
// and nobody waits for it, otherwise when its turn in the key's line comes, on the calling
// goroutine. It returns fn's result. It fails without running fn with ErrQueueFull,
// ErrWouldExceedDeadline, ErrEvicted, ErrTimeout (also context.DeadlineExceeded), ErrClosed,
// ErrUnavailable, ErrInvalidKey, or ctx's error; fn never runs after Request has returned.
// A panic in fn is returned as a *PanicError.
func (c *Client) Request(ctx context.Context, key string, fn func(context.Context) (any, error), opts ...Option) (any, error) {
	if !c.enter() {
		return nil, ErrClosed
	}
	defer c.calls.Leave()
	return c.request(ctx, key, fn, opts...)
}

// request is Request once the call is counted in c.calls: its span around its attempts.
func (c *Client) request(ctx context.Context, key string, fn func(context.Context) (any, error), opts ...Option) (any, error) {
	ctx, rs := c.startRequest(ctx, key)
	v, err := c.attempts(ctx, key, fn, rs, opts)
	rs.end(err)
	return v, err
}

// attempts runs the attempts of a request: one, and more while fn asks to run again later
// (RetryAfter) and its retries last.
func (c *Client) attempts(ctx context.Context, key string, fn func(context.Context) (any, error), rs *requestSpan, opts []Option) (any, error) {
	if err := config.ValidateKey(key); err != nil {
		return nil, err
	}
	o, err := apply(opts)
	if err != nil {
		return nil, err
	}
	rs.admitted(o)
	start := time.Now()
	var last error // the RetryAfterError of the previous attempt
	for attempt := 0; ; attempt++ {
		v, err := c.once(ctx, key, fn, o, attempt > 0, rs)
		ra, ok := asRetryAfter(err)
		if !ok {
			if last != nil && errors.Is(err, ErrWouldExceedDeadline) {
				// The upstream's wait does not fit in the deadline: say what the upstream said.
				return nil, last
			}
			return v, err
		}
		last = err
		rs.retryAfter(ra.After)
		// The upstream asked to wait: every node holds the key until then.
		c.node.PauseFor(ctx, key, ra.After)
		c.node.Adapt(ctx, key, processor.AdaptRefused)
		if attempt >= o.retries {
			return v, err
		}
		// The retry waits within what is left of the request's own deadline (the key was
		// validated above, so its limit resolves without error).
		left := time.Until(processor.Deadline(ctx, start, c.node.Params(key).Limit, o.timeout))
		if left <= 0 {
			return v, err
		}
		o.timeout = left
	}
}

// once is one attempt of Request: wait for the grant (at the head of the line when retrying),
// then run fn.
func (c *Client) once(ctx context.Context, key string, fn func(context.Context) (any, error), o options, head bool, rs *requestSpan) (any, error) {
	start := time.Now()
	g, err := c.node.Acquire(ctx, processor.Request{Key: key, Priority: o.priority, Timeout: o.timeout, Head: head,
		Cost: o.cost, Tenant: o.tenant, Decided: o.decided, Queued: rs.queuedHook(), Degradable: c.cfg.OnRedisError != FailClosed})
	degraded := errors.Is(err, ErrUnavailable)
	if degraded {
		// Only a failure of Redis or of the connection is ErrUnavailable, never a ctx that
		// ended (see processor's admitFailure); after one, the backend fails its next
		// admissions at once for a while (queue.Redis.Admit).
		err = c.degrade(ctx, key, o, start, err)
	}
	if err != nil {
		outcome, wait := failure(err), time.Since(start)
		rs.ended(outcome, wait)
		c.observe(key, o, outcome, false, wait, 0)
		return nil, err
	}
	wait := time.Since(start)
	rs.granted(g, wait, degraded)
	v, err := c.run(ctx, key, fn, g)
	if err == nil && !degraded && g.Limit.Adaptive {
		c.node.Adapt(ctx, key, processor.AdaptServed) // an adaptive key's limit grows back
	}
	if c.cfg.Observer != nil || rs != nil {
		outcome := OutcomeSucceeded
		if err != nil {
			outcome = OutcomeFailed
		}
		rs.ended(outcome, 0)
		c.observe(key, o, outcome, g.Queued || head, wait, time.Since(start)-wait)
	}
	return v, err
}

// degrade applies Config.OnRedisError to a request that Redis could not serve: the error
// (FailClosed), nil to run fn anyway (FailOpen), or the local limit's verdict (FailLocal).
func (c *Client) degrade(ctx context.Context, key string, o options, start time.Time, err error) error {
	switch c.cfg.OnRedisError {
	case FailOpen:
		return nil
	case FailLocal:
		lim := c.node.Params(key).Limit // the key was validated by Request
		return c.local.wait(ctx, c.closing, key, lim, processor.Deadline(ctx, start, lim, o.timeout))
	}
	return err
}

// observe tells the Observer how a request ended, unless Shutdown has returned (or is about
// to: it waits for the calls under way).
func (c *Client) observe(key string, o options, outcome Outcome, queued bool, wait, run time.Duration) {
	if c.cfg.Observer == nil || !c.observing.Enter() {
		return
	}
	defer c.observing.Leave()
	c.cfg.Observer.ObserveRequest(RequestEvent{Key: key, Priority: o.priority, Outcome: outcome, Queued: queued, Wait: wait,
		Run: run, Cost: o.costOf()})
}

// observeSettle tells so of a grant settled, unless Shutdown has returned (as observe).
func (c *Client) observeSettle(so SettleObserver, r processor.SettleRun) {
	if !c.observing.Enter() {
		return
	}
	defer c.observing.Leave()
	so.ObserveSettle(SettleEvent{Key: r.Key, Cost: r.Cost, Actual: r.Actual})
}

// failure classifies the error that kept fn from running.
func failure(err error) Outcome {
	switch {
	case errors.Is(err, ErrQueueFull), errors.Is(err, ErrWouldExceedDeadline):
		return OutcomeRejected
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return OutcomeExpired
	case errors.Is(err, ErrEvicted):
		return OutcomeEvicted
	case errors.Is(err, ErrClosed):
		return OutcomeClosed
	case errors.Is(err, ErrUnavailable):
		return OutcomeUnavailable
	}
	return OutcomeCancelled
}

// run runs fn with a context of its own: ctx's, also cancelled (cause ErrClosed) when Shutdown
// gives up waiting, and when fn returns. No goroutine: Shutdown finds the cancel in c.fns.
func (c *Client) run(ctx context.Context, key string, fn func(context.Context) (any, error), g processor.Grant) (v any, err error) {
	fctx, cancel := context.WithCancelCause(c.node.WithSettlement(ctx, key, g))
	id := c.fns.add(cancel)
	if g.At != 0 && g.Limit.Concurrency > 0 && c.node.Hold(key, g.ID) {
		defer c.node.Release(key, g.ID)
	}
	defer func() {
		c.fns.remove(id)
		cancel(nil)
		if r := recover(); r != nil {
			v, err = nil, &PanicError{Value: r, Stack: debug.Stack()}
		}
		c.node.Done(key, err != nil)
	}()
	return fn(fctx)
}

// RequestAsync is Request on its own goroutine. The returned channel is buffered and receives
// exactly one Result. Shutdown waits for these goroutines and cancels their fn's ctx as it
// does Request's.
func (c *Client) RequestAsync(ctx context.Context, key string, fn func(context.Context) (any, error), opts ...Option) <-chan Result {
	ch := make(chan Result, 1)
	if !c.enter() {
		ch <- Result{Err: ErrClosed}
		return ch
	}
	go func() {
		defer c.calls.Leave()
		v, err := c.request(ctx, key, fn, opts...)
		ch <- Result{Value: v, Err: err}
	}()
	return ch
}

// Do is Request for a fn with a typed result.
func Do[T any](ctx context.Context, c *Client, key string, fn func(context.Context) (T, error), opts ...Option) (T, error) {
	v, err := c.Request(ctx, key, func(ctx context.Context) (any, error) { return fn(ctx) }, opts...)
	t, _ := v.(T) // v is fn's T, or nil when fn did not run
	return t, err
}
