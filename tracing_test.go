package rateltd

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/rateltd/rateltd/queue"
)

// newRecorder returns a TracerProvider that keeps every span ended, in its recorder.
func newRecorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, sr
}

// spansNamed returns the spans of sr called name, in the order they ended.
func spansNamed(sr *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// attr returns the attribute k of s, failing the test when s has none.
func attr(t *testing.T, s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	t.Helper()
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	t.Fatalf("span %s has no attribute %s: %v", s.Name(), k, s.Attributes())
	return attribute.Value{}
}

// eventNames lists the names of s's events, in order.
func eventNames(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, e := range s.Events() {
		out = append(out, e.Name)
	}
	return out
}

// TestTraceRequest: a request's span is a child of the caller's span and the parent of fn's;
// a request admitted at once has the event "granted", one that waited "queued" and then
// "granted" and the wait in rateltd.wait_ms; each carries its key, group, priority, cost and
// outcome; fn's error and a refusal are the span's error.
func TestTraceRequest(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		tp, sr := newRecorder(t)
		c := h.client(Config{TracerProvider: tp, Limits: map[string]Limit{
			"api":   {Max: 1, Window: 200 * time.Millisecond},
			"never": {Max: 1, Window: time.Hour, MaxQueue: -1},
		}})
		ctx, parent := tp.Tracer("test").Start(context.Background(), "caller")
		var inFn []trace.SpanContext
		fn := func(ctx context.Context) (any, error) {
			inFn = append(inFn, trace.SpanContextFromContext(ctx))
			return nil, nil
		}
		for range 2 { // the second waits for the first's window
			if _, err := c.Request(ctx, "api:chat", fn, WithPriority(PriorityHigh), WithCost(3)); err != nil {
				t.Fatal(err)
			}
		}
		boom := errors.New("upstream 500")
		if _, err := c.Request(ctx, "api:chat", func(context.Context) (any, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("fn's error: %v", err)
		}
		if _, err := c.Request(ctx, "never", fn); err != nil {
			t.Fatalf("never, first: %v", err)
		}
		_, err := c.Request(ctx, "never", fn)
		if !errors.Is(err, ErrQueueFull) {
			t.Fatalf("never: %v, want ErrQueueFull", err)
		}
		parent.End()

		spans := spansNamed(sr, spanRequest)
		if len(spans) != 5 {
			t.Fatalf("%d request spans, want 5", len(spans))
		}
		for i, s := range spans {
			if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				t.Fatalf("span %d: parent %v, want the caller's %v", i, s.Parent(), parent.SpanContext())
			}
		}
		for i, s := range spans[:2] {
			if !inFn[i].Equal(s.SpanContext()) {
				t.Fatalf("request %d: fn's ctx carries span %v, want the request's %v", i, inFn[i], s.SpanContext())
			}
			if attr(t, s, attrKey).AsString() != "api:chat" || attr(t, s, attrGroup).AsString() != "api" ||
				attr(t, s, attrPriority).AsString() != "high" || attr(t, s, attrCost).AsInt64() != 3 ||
				attr(t, s, attrOutcome).AsString() != "succeeded" || s.Status().Code == codes.Error {
				t.Fatalf("request %d: attributes %v, status %v", i, s.Attributes(), s.Status())
			}
		}
		if ev := eventNames(spans[0]); !slices.Equal(ev, []string{eventGranted}) || attr(t, spans[0], attrQueued).AsBool() {
			t.Fatalf("admitted at once: events %v, attributes %v", ev, spans[0].Attributes())
		}
		waited := spans[1]
		if ev := eventNames(waited); !slices.Equal(ev, []string{eventQueued, eventGranted}) || !attr(t, waited, attrQueued).AsBool() {
			t.Fatalf("waited: events %v, attributes %v", ev, waited.Attributes())
		}
		if w := attr(t, waited, attrWait).AsFloat64(); w < 100 {
			t.Fatalf("waited %vms for a window of 200ms", w)
		}
		if ev := waited.Events(); ev[0].Time.After(ev[1].Time) || ev[1].Time.Sub(ev[0].Time) < 100*time.Millisecond {
			t.Fatalf("queued at %v, granted at %v: want the window's wait between them", ev[0].Time, ev[1].Time)
		}
		failed := spans[2]
		if attr(t, failed, attrOutcome).AsString() != "failed" || failed.Status().Code != codes.Error ||
			!slices.Contains(eventNames(failed), "exception") {
			t.Fatalf("fn failed: attributes %v, status %v, events %v", failed.Attributes(), failed.Status(), eventNames(failed))
		}
		refused := spans[4]
		if attr(t, refused, attrOutcome).AsString() != "rejected" || refused.Status().Code != codes.Error ||
			slices.Contains(eventNames(refused), eventGranted) {
			t.Fatalf("refused: attributes %v, status %v, events %v", refused.Attributes(), refused.Status(), eventNames(refused))
		}
	})
}

// TestTraceJobAcrossClients: a job enqueued on one Client and run on another after a wait is
// one trace: each run's span (rateltd.job, on the Client that ran it) is a child of the
// enqueue's span (rateltd.enqueue, on the Client that enqueued) and linked to it, through the
// trace context kept in the job's record, also for a retry; the handler's ctx carries the
// run's span. EnqueueMany's jobs link to its one span.
func TestTraceJobAcrossClients(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		tpA, srA := newRecorder(t)
		tpB, srB := newRecorder(t)
		a := h.client(Config{TracerProvider: tpA})
		b := h.client(Config{TracerProvider: tpB, RetryBackoff: time.Millisecond})
		ctx, parent := tpA.Tracer("test").Start(context.Background(), "caller")
		id, err := a.Enqueue(ctx, "mail", "send", []byte("x"), WithMaxRetries(1))
		if err != nil {
			t.Fatal(err)
		}
		ids, err := a.EnqueueMany(ctx, "mail", "send", [][]byte{[]byte("y"), []byte("z")})
		if err != nil {
			t.Fatal(err)
		}
		parent.End()
		waitQueued(t, a, "mail", 3) // the jobs wait in line until a Client runs their handler

		inHandler := make(chan trace.SpanContext, 4)
		var failed atomic.Bool
		err = b.Handle("send", func(ctx context.Context, p []byte) ([]byte, error) {
			inHandler <- trace.SpanContextFromContext(ctx)
			if string(p) == "x" && failed.CompareAndSwap(false, true) {
				return nil, errors.New("smtp 451")
			}
			return p, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range append([]string{id}, ids...) {
			if _, err := b.Wait(context.Background(), id); err != nil {
				t.Fatalf("Wait(%s): %v", id, err)
			}
		}
		eventually(t, 5*time.Second, "four job spans ended", func() bool { return len(spansNamed(srB, spanJob)) == 4 })

		enq := spansNamed(srA, spanEnqueue)
		if len(enq) != 2 || attr(t, enq[0], attrJobID).AsString() != id || attr(t, enq[1], attrJobs).AsInt64() != 2 ||
			attr(t, enq[1], attrQueuedJobs).AsInt64() != 2 || enq[0].SpanKind() != trace.SpanKindProducer {
			t.Fatalf("enqueue spans %v", enq)
		}
		for _, s := range enq {
			if s.Parent().SpanID() != parent.SpanContext().SpanID() || attr(t, s, attrHandler).AsString() != "send" {
				t.Fatalf("enqueue span: parent %v, attributes %v", s.Parent(), s.Attributes())
			}
		}
		if len(spansNamed(srA, spanJob)) != 0 || len(spansNamed(srB, spanEnqueue)) != 0 {
			t.Fatal("a job span on the enqueuer, or an enqueue span on the runner")
		}
		handlerSpans := make([]trace.SpanContext, 0, 4)
		for range 4 {
			handlerSpans = append(handlerSpans, <-inHandler)
		}
		outcomes := map[string][]string{}
		for _, s := range spansNamed(srB, spanJob) {
			jid := attr(t, s, attrJobID).AsString()
			from := enq[1].SpanContext()
			if jid == id {
				from = enq[0].SpanContext()
			}
			links := s.Links()
			if !s.Parent().Equal(from.WithRemote(true)) || len(links) != 1 || !links[0].SpanContext.Equal(from.WithRemote(true)) ||
				s.SpanKind() != trace.SpanKindConsumer {
				t.Fatalf("job %s: parent %v, links %v; want the enqueue's %v", jid, s.Parent(), links, from)
			}
			if !slices.ContainsFunc(handlerSpans, s.SpanContext().Equal) {
				t.Fatalf("job %s: the handler's ctx did not carry its run's span %v", jid, s.SpanContext())
			}
			if attr(t, s, attrKey).AsString() != "mail" || attr(t, s, attrHandler).AsString() != "send" ||
				attr(t, s, attrRun).AsInt64() != int64(len(outcomes[jid])+1) || attr(t, s, attrWait).AsFloat64() <= 0 {
				t.Fatalf("job %s: attributes %v", jid, s.Attributes())
			}
			outcomes[jid] = append(outcomes[jid], attr(t, s, attrOutcome).AsString())
			if (s.Status().Code == codes.Error) != (outcomes[jid][len(outcomes[jid])-1] == "retried") {
				t.Fatalf("job %s: status %v, outcome %v", jid, s.Status(), outcomes[jid])
			}
		}
		if !slices.Equal(outcomes[id], []string{"retried", "succeeded"}) || !slices.Equal(outcomes[ids[0]], []string{"succeeded"}) {
			t.Fatalf("outcomes of the runs: %v", outcomes)
		}
	})
}

// globalSet is set once TestTraceGlobalProvider has set the global TracerProvider, which
// stays set for the rest of the test binary; no other test sets it.
var globalSet bool

// TestTraceGlobalProvider: with no Config.TracerProvider, a Client makes no span while the
// global provider is otel's default (which would drop them), and none with a no-op provider,
// at no allocation; once a provider is set globally, after New, the Client's requests are
// traced with it.
func TestTraceGlobalProvider(t *testing.T) {
	if globalSet {
		t.Skip("an earlier run of this test (-count) set the global TracerProvider")
	}
	c := (&harness{t: t, kind: "memory", mem: queue.NewMemory()}).client(Config{})
	noopC := (&harness{t: t, kind: "memory", mem: queue.NewMemory()}).client(Config{TracerProvider: tracenoop.NewTracerProvider()})
	for _, c := range []*Client{c, noopC} {
		ctx := context.Background()
		if got, rs := c.startRequest(ctx, "k"); rs != nil || got != ctx {
			t.Fatalf("tracing off: a span was started (%v, %v)", got, rs)
		}
		if n := testing.AllocsPerRun(100, func() { c.startRequest(ctx, "k") }); n != 0 {
			t.Fatalf("tracing off: %v allocations per request, want none", n)
		}
	}
	tp, sr := newRecorder(t)
	globalSet = true
	otel.SetTracerProvider(tp)
	if _, err := c.Request(context.Background(), "trace-global", func(context.Context) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := noopC.Request(context.Background(), "trace-noop", func(context.Context) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range spansNamed(sr, spanRequest) {
		keys = append(keys, attr(t, s, attrKey).AsString())
	}
	if !slices.Contains(keys, "trace-global") || slices.Contains(keys, "trace-noop") {
		t.Fatalf("spans of keys %v; want one of trace-global (the global provider), none of trace-noop", keys)
	}
}

// TestTraceShadow: a request on a shadow key says on its span what the limit would have done —
// allowed, queued with its would-be wait, refused — on every backend.
func TestTraceShadow(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		tp, sr := newRecorder(t)
		c := h.client(Config{TracerProvider: tp, Limits: map[string]Limit{
			"watch": {Max: 1, Window: 10 * time.Second, Shadow: true},
			"never": {Max: 1, Window: time.Hour, Shadow: true, MaxQueue: -1},
		}})
		ctx := context.Background()
		ok := func(context.Context) (any, error) { return nil, nil }
		for _, key := range []string{"watch", "watch", "never", "never"} {
			if _, err := c.Request(ctx, key, ok); err != nil {
				t.Fatal(err)
			}
		}
		spans := spansNamed(sr, spanRequest)
		if len(spans) != 4 {
			t.Fatalf("%d request spans, want 4", len(spans))
		}
		for i, want := range []string{"allowed", "queued", "allowed", "refused"} {
			if got := attr(t, spans[i], attrShadow).AsString(); got != want {
				t.Errorf("span %d: rateltd.shadow %q, want %q", i, got, want)
			}
		}
		if w := attr(t, spans[1], attrShadowWait).AsFloat64(); w < 5_000 || w > 10_000 {
			t.Errorf("the queued one's would-be wait %vms, want about 10s", w)
		}
	})
}
