package rateltd

import (
	"context"
	"reflect"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/processor"
)

// OpenTelemetry traces: a span per request (rateltd.request), per enqueue (rateltd.enqueue)
// and per run of a durable job (rateltd.job), the last linked to its enqueue through the W3C
// trace context kept in the job's record.

// tracerName is the instrumentation scope of rateltd's spans.
const tracerName = "github.com/rateltd/rateltd"

// The names of rateltd's spans and events, and the keys of their attributes.
const (
	spanRequest = "rateltd.request"
	spanEnqueue = "rateltd.enqueue"
	spanJob     = "rateltd.job"

	eventQueued     = "queued"
	eventGranted    = "granted"
	eventRetryAfter = "retry_after"

	attrKey        = attribute.Key("rateltd.key")
	attrGroup      = attribute.Key("rateltd.group")
	attrPriority   = attribute.Key("rateltd.priority")
	attrCost       = attribute.Key("rateltd.cost")
	attrWait       = attribute.Key("rateltd.wait_ms")
	attrOutcome    = attribute.Key("rateltd.outcome")
	attrQueued     = attribute.Key("rateltd.queued")
	attrDegraded   = attribute.Key("rateltd.degraded")
	attrAfter      = attribute.Key("rateltd.after_ms")
	attrHandler    = attribute.Key("rateltd.handler")
	attrJobID      = attribute.Key("rateltd.job_id")
	attrJobs       = attribute.Key("rateltd.jobs")
	attrQueuedJobs = attribute.Key("rateltd.jobs_queued")
	attrRun        = attribute.Key("rateltd.run")
	attrShadow     = attribute.Key("rateltd.shadow")
	attrShadowWait = attribute.Key("rateltd.shadow_wait_ms")
	attrTenant     = attribute.Key("rateltd.tenant")
)

// globalPkg is the package of the TracerProvider otel.GetTracerProvider returns until
// otel.SetTracerProvider is called: one that drops every span until then.
const globalPkg = "go.opentelemetry.io/otel/internal/global"

// tracing is a Client's tracer. Set by New, never changed.
type tracing struct {
	tracer trace.Tracer
	// idle, when not nil, is the provider tracer came from: otel.GetTracerProvider's as New
	// found it, before any was set (or the no-op one, given). While otel.GetTracerProvider
	// still returns it, no span is made: the spans would be dropped, and requests save the
	// allocations of starting them. Once a provider is set globally, tracer hands its spans on.
	idle trace.TracerProvider
}

// newTracing is the tracing of Config.TracerProvider tp: nil for the global one.
func newTracing(tp trace.TracerProvider) tracing {
	var t tracing
	if tp == nil {
		tp = otel.GetTracerProvider()
		// A type of the otel module not exported: should it move, tracing is merely never idle.
		if rt := reflect.TypeOf(tp); rt.Kind() == reflect.Pointer && rt.Elem().PkgPath() == globalPkg {
			t.idle = tp
		}
	}
	if _, ok := tp.(tracenoop.TracerProvider); ok {
		t.idle = tp
	}
	t.tracer = tp.Tracer(tracerName)
	return t
}

// off reports whether no span would be kept: see idle.
func (t *tracing) off() bool {
	if t.idle == nil {
		return false
	}
	if _, ok := t.idle.(tracenoop.TracerProvider); ok {
		return true
	}
	return otel.GetTracerProvider() == t.idle
}

// start starts a span called name, unless tracing is off; the span is nil when it is not
// recorded (tracing off, or not sampled), and the ctx returned carries it either way.
func (t *tracing) start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t.off() {
		return ctx, nil
	}
	ctx, span := t.tracer.Start(ctx, name, opts...)
	if !span.IsRecording() {
		span.End()
		return ctx, nil
	}
	return ctx, span
}

// endSpan ends span, recording err, when not nil, as its error.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// keyAttrs are the attributes of a span about key.
func keyAttrs(key string) []attribute.KeyValue {
	return []attribute.KeyValue{attrKey.String(key), attrGroup.String(config.Group(key))}
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// requestSpan is the span of one request (rateltd.request), from its call to fn's end, over
// every attempt of it. A nil *requestSpan (the request is not traced) does nothing. Used by
// the request's goroutine only.
type requestSpan struct {
	span trace.Span
	// onQueued adds the event "queued" and sets queued: processor.Request.Queued.
	onQueued func()
	// wait sums the attempts' waits for their grants (or outcomes); outcome is how the last
	// attempt ended (0 before); queued reports that some attempt waited in line.
	wait    time.Duration
	outcome Outcome
	queued  bool
}

// startRequest starts the span of a request for key; ctx carries it.
func (c *Client) startRequest(ctx context.Context, key string) (context.Context, *requestSpan) {
	if c.tr.off() {
		return ctx, nil // before the attributes: they cost allocations
	}
	ctx, span := c.tr.start(ctx, spanRequest, trace.WithAttributes(keyAttrs(key)...))
	if span == nil {
		return ctx, nil
	}
	r := &requestSpan{span: span}
	r.onQueued = func() {
		r.queued = true
		span.AddEvent(eventQueued)
	}
	return ctx, r
}

// admitted records the request's options, once they are known valid.
func (r *requestSpan) admitted(o options) {
	if r != nil {
		r.span.SetAttributes(attrPriority.String(o.priority.String()), attrCost.Int64(o.costOf()))
		if o.tenant != "" {
			r.span.SetAttributes(attrTenant.String(o.tenant))
		}
	}
}

// queuedHook is processor.Request.Queued for the request.
func (r *requestSpan) queuedHook() func() {
	if r == nil {
		return nil
	}
	return r.onQueued
}

// granted records an attempt's grant g after wait; degraded when no grant was asked for (Redis
// out, Config.OnRedisError). A grant on a shadow key says what the limit would have done
// (rateltd.shadow: allowed, queued or refused) and the wait it would have had.
func (r *requestSpan) granted(g processor.Grant, wait time.Duration, degraded bool) {
	if r == nil {
		return
	}
	r.wait += wait
	if degraded {
		r.span.AddEvent(eventGranted, trace.WithAttributes(attrDegraded.Bool(true)))
		return
	}
	if g.Shadow != 0 {
		r.span.SetAttributes(attrShadow.String(g.Shadow.String()), attrShadowWait.Float64(ms(g.ShadowWait)))
	}
	r.span.AddEvent(eventGranted)
}

// ended records how an attempt ended; wait is its wait when fn did not run (0 when it did).
func (r *requestSpan) ended(o Outcome, wait time.Duration) {
	if r != nil {
		r.outcome, r.wait = o, r.wait+wait
	}
}

// retryAfter records that fn asked to run again after d.
func (r *requestSpan) retryAfter(d time.Duration) {
	if r != nil {
		r.span.AddEvent(eventRetryAfter, trace.WithAttributes(attrAfter.Float64(ms(d))))
	}
}

// end ends the span with the request's error.
func (r *requestSpan) end(err error) {
	if r == nil {
		return
	}
	r.span.SetAttributes(attrWait.Float64(ms(r.wait)), attrQueued.Bool(r.queued))
	if r.outcome != 0 {
		r.span.SetAttributes(attrOutcome.String(r.outcome.String()))
	}
	endSpan(r.span, err)
}

// jobCarrier holds a job's W3C trace context, for propagation.TraceContext.
type jobCarrier struct{ parent, state string }

const (
	traceParentHeader = "traceparent"
	traceStateHeader  = "tracestate"
)

func (c *jobCarrier) Get(k string) string {
	switch k {
	case traceParentHeader:
		return c.parent
	case traceStateHeader:
		return c.state
	}
	return ""
}

func (c *jobCarrier) Set(k, v string) {
	switch k {
	case traceParentHeader:
		c.parent = v
	case traceStateHeader:
		c.state = v
	}
}

func (c *jobCarrier) Keys() []string { return []string{traceParentHeader, traceStateHeader} }

// startEnqueue starts the span of an enqueue of n jobs (rateltd.enqueue) and puts its trace
// context in job, for the spans of the jobs' runs.
func (c *Client) startEnqueue(ctx context.Context, job *processor.Job, n int) (context.Context, trace.Span) {
	if c.tr.off() {
		return ctx, nil
	}
	attrs := append(keyAttrs(job.Key), attrHandler.String(job.Handler), attrPriority.String(job.Priority.String()),
		attrCost.Int64(max(1, job.Cost)), attrJobs.Int(n))
	if job.Tenant != "" {
		attrs = append(attrs, attrTenant.String(job.Tenant))
	}
	ctx, span := c.tr.start(ctx, spanEnqueue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	if span != nil {
		var carrier jobCarrier
		propagation.TraceContext{}.Inject(ctx, &carrier)
		job.TraceParent, job.TraceState = carrier.parent, carrier.state
	}
	return ctx, span
}

// startJob is processor.Options.StartJob: the span of a run of a durable job (rateltd.job),
// a child of the span that enqueued it and linked to it, when the enqueue was traced.
func (c *Client) startJob(ctx context.Context, s processor.JobStart) (context.Context, func(processor.JobRun)) {
	if c.tr.off() {
		return ctx, func(processor.JobRun) {}
	}
	attrs := append(keyAttrs(s.Key), attrHandler.String(s.Handler), attrJobID.String(s.ID), attrRun.Int(s.Run),
		attrCost.Int64(s.Cost), attrWait.Float64(ms(s.Waited)))
	if s.Tenant != "" {
		attrs = append(attrs, attrTenant.String(s.Tenant))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	carrier := jobCarrier{parent: s.TraceParent, state: s.TraceState}
	if enq := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &carrier)); enq.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, enq)
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: enq}))
	}
	ctx, span := c.tr.start(ctx, spanJob, opts...)
	if span == nil {
		return ctx, func(processor.JobRun) {}
	}
	return ctx, func(r processor.JobRun) {
		span.SetAttributes(attrOutcome.String(jobOutcomes[r.End].String()))
		endSpan(span, r.Err)
	}
}
