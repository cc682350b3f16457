// Package rateltd turns a rate limit into a line to wait in instead of an error.
//
// Any number of processes call [Client.Request] with a key such as "openai". While the key is
// under its limit, fn runs at once. When the limit is reached, the request waits in a line
// shared through Redis — by priority, first come first served, with a deadline — and fn runs
// on the calling goroutine the moment the limit allows. Across all processes the limit is never
// exceeded; time is Redis server time.
//
// # Getting started
//
//	rl, err := rateltd.New(rateltd.Config{
//		Redis:  rdb, // one Redis, Sentinel or a Cluster (not a Ring); nil for an in-process backend
//		Limits: map[string]rateltd.Limit{"openai": {Max: 500, Window: time.Minute}},
//	})
//	if err != nil { ... }
//	defer rl.Close()
//	v, err := rl.Request(ctx, "openai", func(ctx context.Context) (any, error) {
//		return callOpenAI(ctx)
//	}, rateltd.WithPriority(rateltd.PriorityHigh), rateltd.WithTimeout(10*time.Second))
//
// [Do] is the typed form, [Client.RequestAsync] runs on its own goroutine.
//
// # Limits
//
// A key's limit is, in order: the one in [Config].Limits for the exact key, one set at run
// time with [Client.SetLimit], the one in Limits for its group (the text before the first ':',
// so "stripe" covers "stripe:acct_42"), and [Config].Default. Three algorithms:
// [SlidingWindow] (exact, one entry per grant, at most Max), [FixedWindow] (a counter per
// aligned window) and [TokenBucket] (GCRA with Burst).
//
// # Waiting
//
// A key's line is served by priority — [PriorityCritical], [PriorityHigh], [PriorityNormal],
// [PriorityLow] — and first come, first served within one. [PriorityNormal] is the default and
// the zero value of [Priority], so a priority left unset means Normal.
//
// Each request has one deadline: the sooner of ctx's deadline, [WithTimeout] and the key's
// QueueTimeout. A request whose earliest possible start is already past it fails at once with
// [ErrWouldExceedDeadline]; one whose deadline passes in line returns an error that is both
// [ErrTimeout] and [context.DeadlineExceeded], and its fn never runs. Cancelling ctx takes the
// request out of the line at once. A full line refuses newcomers ([ErrQueueFull]) or drops its
// oldest request ([ErrEvicted]), as the key's Overflow says.
//
// # Durable jobs
//
// Work that must outlive the process that asked for it is a durable job: a handler name and
// bytes, kept in Redis. [Client.Handle] registers a handler on the nodes that run it;
// [Client.Enqueue] puts a job in a key's line (the same line, limit, priorities and deadlines
// as requests) and returns its id; [Client.Wait] returns its result, on any node, also after a
// restart, for [Config].ResultTTL. [HandleFunc] and [Call] are the typed forms, over msgpack.
// [Client.EnqueueMany] queues a batch of jobs in one round trip, in order.
// A job runs at least once: on a node that runs its handler and has a free worker
// ([Config].Workers), under a lease that another node takes back when that node dies. A failing
// handler runs again after an exponential backoff with jitter while [WithMaxRetries] lasts;
// then the job is dead-lettered ([Client.DeadLetters]) and Wait returns a [*JobError]. Make
// handlers idempotent: a node that dies after a handler's work, before its result is kept,
// leaves the job to run again.
// [WithDelay] and [WithRunAt] schedule a job to join its line later; [Client.CancelJob] ends a
// waiting or scheduled job (its Wait returns [ErrCancelled]) and stops a running one's handler.
//
// # Operating
//
// [Client.Status] shows a key's window, line, pause and counters; [Client.Check] answers
// whether a request would start now, consuming nothing. [Client.Pause] and [Client.Resume]
// act on a key, a group or "*" (everything); [Client.Reset] clears a key.
//
// # When things go wrong
//
// When the upstream answers "retry after", fn returns [RetryAfter] (or [RetryAfterResponse] of
// the answer): the key pauses on every node until then, and with [WithMaxRetries] the request
// runs again from the head of its line. When Redis cannot be reached, [Config].OnRedisError
// picks [FailClosed] (the default: [ErrUnavailable] by the deadline), [FailOpen] or
// [FailLocal]. A node that dies stops holding up the line once its heartbeat lapses.
//
// # Shutting down
//
// [Client.Shutdown] stops taking work at once: new calls fail with [ErrClosed], requests
// waiting in line end with [ErrClosed]. Running fns and handlers get until its ctx ends; then
// their contexts are cancelled and Shutdown returns an error naming what did not stop.
// [Client.Close] is Shutdown bounded by [Config].ShutdownTimeout. The library installs no
// signal handler: pass Shutdown a context of your own, e.g. after [os/signal.NotifyContext].
//
// # Metrics
//
// [Config].Observer hears how every request ended, with its cost (and, as a [JobObserver] and
// a [SettleObserver], every run of a durable job and every grant settled); package metrics
// turns that into Prometheus series. Packages httpapi and middleware serve rateltd over HTTP, and the rateltd command
// operates it.
//
// # Traces
//
// [Config].TracerProvider (by default the global one, otel.GetTracerProvider) makes
// OpenTelemetry spans. A request ([Client.Request], [Client.RequestAsync], [Do]) is one span,
// rateltd.request, from the call to fn's end, a child of the span in ctx; fn's ctx carries it,
// so spans made in fn nest under it. Its events say when it was put in line ("queued") and
// when it was granted ("granted"), its attributes its key, group, priority, cost, time waited
// and outcome; an error is recorded on it. [Client.Enqueue] and [Client.EnqueueMany] make a span
// rateltd.enqueue, whose W3C trace context is kept in each job's record; each run of the job,
// on whichever node, is a span rateltd.job, a child of the enqueue's span and linked to it, so
// that one trace shows a job enqueued on one node and run on another. While the global
// provider is otel's default (which drops every span), requests make no span and cost
// nothing more.
//
// # Nodes
//
// Each Client is a node with one processor goroutine. It sleeps until a slot frees, a wake-up
// arrives by pub/sub or its poll interval passes, and grants waiting requests in batches by one
// atomic script per key. Grants for requests of other nodes are left in Redis for them to claim;
// pub/sub only wakes them early, nothing depends on its delivery.
package rateltd
