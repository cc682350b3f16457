package middleware

import (
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ContinueTrace returns r with a ctx that continues its caller's trace: the trace context of
// its headers (W3C traceparent and tracestate), read by otel's global TextMapPropagator, or,
// while none is set (otel's default propagates nothing), by propagation.TraceContext. The
// spans rateltd starts for the request (rateltd.request, rateltd.enqueue) are then children
// of the caller's span. A request whose ctx already holds a span (a tracing middleware such as
// otelhttp ran before) is returned as it is, so that its span stays the parent; so is one
// whose headers carry no trace context. The middleware and the HTTP API (package httpapi)
// call it on every request.
func ContinueTrace(r *http.Request) *http.Request {
	if trace.SpanContextFromContext(r.Context()).IsValid() {
		return r
	}
	var p propagation.TextMapPropagator = otel.GetTextMapPropagator()
	if len(p.Fields()) == 0 {
		p = propagation.TraceContext{}
	}
	ctx := p.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	if ctx == r.Context() {
		return r
	}
	return r.WithContext(ctx)
}
