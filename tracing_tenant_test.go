package rateltd

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// hasAttr reports whether s has the attribute k.
func hasAttr(s sdktrace.ReadOnlySpan, k attribute.Key) bool {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return true
		}
	}
	return false
}

// TestTraceTenant: the spans of a request, an enqueue and a job's run carry rateltd.tenant when
// the request or job has a tenant (the run's from the job's record), and none without one.
func TestTraceTenant(t *testing.T) {
	eachBackend(t, func(t *testing.T, h *harness) {
		tp, sr := newRecorder(t)
		c := h.client(Config{TracerProvider: tp})
		ctx := context.Background()
		fn := func(context.Context) (any, error) { return nil, nil }
		if _, err := c.Request(ctx, "api", fn, WithTenant("acme")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Request(ctx, "api", fn); err != nil {
			t.Fatal(err)
		}
		if err := c.Handle("send", func(_ context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
			t.Fatal(err)
		}
		id, err := c.Enqueue(ctx, "mail", "send", []byte("x"), WithTenant("acme"))
		if err != nil {
			t.Fatal(err)
		}
		ids, err := c.EnqueueMany(ctx, "mail", "send", [][]byte{[]byte("y")}, WithTenant("bee"))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := c.Enqueue(ctx, "mail", "send", []byte("z"))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{id, ids[0], plain} {
			if _, err := c.Wait(ctx, id); err != nil {
				t.Fatalf("Wait(%s): %v", id, err)
			}
		}
		eventually(t, 5*time.Second, "three job spans ended", func() bool { return len(spansNamed(sr, spanJob)) == 3 })

		req := spansNamed(sr, spanRequest)
		if len(req) != 2 || attr(t, req[0], attrTenant).AsString() != "acme" || hasAttr(req[1], attrTenant) {
			t.Fatalf("request spans %v", req)
		}
		enq := spansNamed(sr, spanEnqueue)
		if len(enq) != 3 || attr(t, enq[0], attrTenant).AsString() != "acme" || attr(t, enq[1], attrTenant).AsString() != "bee" ||
			hasAttr(enq[2], attrTenant) {
			t.Fatalf("enqueue spans %v", enq)
		}
		want := map[string]string{id: "acme", ids[0]: "bee", plain: ""}
		for _, s := range spansNamed(sr, spanJob) {
			jid := attr(t, s, attrJobID).AsString()
			if w := want[jid]; w == "" && hasAttr(s, attrTenant) || w != "" && attr(t, s, attrTenant).AsString() != w {
				t.Fatalf("job %s: attributes %v; want tenant %q", jid, s.Attributes(), w)
			}
		}
	})
}
