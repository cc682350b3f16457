package middleware_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/middleware"
)

// The caller's span, as a W3C traceparent would carry it.
const (
	callerTrace       = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan        = "00f067aa0ba902b7"
	callerTraceparent = "00-" + callerTrace + "-" + callerSpan + "-01"
)

// recorder returns a TracerProvider that keeps every span ended, in its recorder.
func recorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, sr
}

// requestSpan returns the one span rateltd.request sr holds.
func requestSpan(t *testing.T, sr *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	var got []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == "rateltd.request" {
			got = append(got, s)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d spans rateltd.request, want 1", len(got))
	}
	return got[0]
}

// TestMiddlewareContinuesTrace: a request carrying a W3C traceparent makes its rateltd.request
// span a child of the caller's span, in the caller's trace (with no propagator set globally,
// the W3C trace context is read); one whose ctx already holds a span (a tracing middleware
// before this one) keeps that span as the parent, whatever its headers say.
func TestMiddlewareContinuesTrace(t *testing.T) {
	tp, sr := recorder(t)
	c := client(t, "memory", rateltd.Config{TracerProvider: tp, Limits: map[string]rateltd.Limit{"api": {Max: 10, Window: time.Minute}}})
	limit, err := middleware.New(c, middleware.Options{Key: middleware.Header("X-API-Key"), Group: "api"})
	if err != nil {
		t.Fatal(err)
	}
	var inHandler trace.SpanContext
	handler := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHandler = trace.SpanContextFromContext(r.Context())
		io.WriteString(w, "ok")
	}))
	ts := httptest.NewServer(handler)
	defer ts.Close()
	if resp, body := get(t, ts.URL, map[string]string{"X-API-Key": "alice", "traceparent": callerTraceparent}); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	s := requestSpan(t, sr)
	if s.SpanContext().TraceID().String() != callerTrace || s.Parent().SpanID().String() != callerSpan || !s.Parent().IsRemote() {
		t.Fatalf("rateltd.request in trace %s under %s (remote %v), want trace %s under the caller's span %s",
			s.SpanContext().TraceID(), s.Parent().SpanID(), s.Parent().IsRemote(), callerTrace, callerSpan)
	}
	if inHandler.SpanID() != s.SpanContext().SpanID() {
		t.Fatalf("the handler runs under span %s, want rateltd.request's %s", inHandler.SpanID(), s.SpanContext().SpanID())
	}

	// A span already in the request's ctx stays the parent.
	sr2 := tracetest.NewSpanRecorder()
	tp.RegisterSpanProcessor(sr2)
	local := tp.Tracer("test")
	traced := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := local.Start(r.Context(), "server")
		defer span.End()
		handler.ServeHTTP(w, r.WithContext(ctx))
	}))
	defer traced.Close()
	if resp, body := get(t, traced.URL, map[string]string{"X-API-Key": "alice", "traceparent": callerTraceparent}); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	s = requestSpan(t, sr2)
	var server trace.SpanContext
	for _, e := range sr2.Ended() {
		if e.Name() == "server" {
			server = e.SpanContext()
		}
	}
	if !server.IsValid() || s.Parent().SpanID() != server.SpanID() || s.Parent().IsRemote() {
		t.Fatalf("rateltd.request under %s (remote %v), want the server span %s", s.Parent().SpanID(), s.Parent().IsRemote(), server.SpanID())
	}
}
