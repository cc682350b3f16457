package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
	"github.com/rateltd/rateltd/internal/testnode"
)

// TestAPIContinuesTrace: an acquire and a job's enqueue carrying their caller's W3C trace
// context make their spans (rateltd.request, rateltd.enqueue) children of the caller's span,
// in its trace; an acquire without one starts a trace of its own.
func TestAPIContinuesTrace(t *testing.T) {
	const (
		trace  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent = "00f067aa0ba902b7"
	)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	c := testnode.Client(t, "memory", rateltd.Config{TracerProvider: tp, Default: rateltd.Limit{Max: 10, Window: time.Minute}})
	ts := httptest.NewServer(httpapi.NewHandler(c, httpapi.Options{}))
	t.Cleanup(ts.Close)
	send := func(path string, traced bool) {
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader("payload"))
		if traced {
			req.Header.Set("traceparent", "00-"+trace+"-"+parent+"-01")
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	send("/v1/acquire/api", true)
	send("/v1/jobs/mail?handler=send&allow_unknown=1", true)
	send("/v1/acquire/api", false)
	ended := sr.Ended()
	if len(ended) != 3 {
		t.Fatalf("%d spans, want 3", len(ended))
	}
	for i, name := range []string{"rateltd.request", "rateltd.enqueue"} {
		s := ended[i]
		if s.Name() != name || s.SpanContext().TraceID().String() != trace || s.Parent().SpanID().String() != parent || !s.Parent().IsRemote() {
			t.Fatalf("span %d: %s in trace %s under %s (remote %v); want %s in trace %s under the caller's span %s",
				i, s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID(), s.Parent().IsRemote(), name, trace, parent)
		}
	}
	if s := ended[2]; s.SpanContext().TraceID().String() == trace || s.Parent().IsValid() {
		t.Fatalf("an acquire with no trace context: trace %s under %s, want a trace of its own", s.SpanContext().TraceID(), s.Parent().SpanID())
	}
}
