package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
	"github.com/rateltd/rateltd/internal/testnode"
)

// TestScheduledJobsOverHTTP: a job enqueued with ?delay= is listed under the key's scheduled
// jobs and counted in its status; DELETE cancels it, and its state reads "cancelled"; a job
// whose run_at is past runs at once.
func TestScheduledJobsOverHTTP(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			ts, c := server(t, backend, rateltd.Config{Default: rateltd.Limit{Max: 100, Window: time.Second}}, httpapi.Options{})
			if err := c.Handle("echo", func(_ context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
				t.Fatal(err)
			}
			a := call(t, ts, "POST", "/v1/jobs/mail?handler=echo&delay=1h&priority=high", "", "later")
			id, _ := a.body["id"].(string)
			if a.code != 201 || !strings.HasPrefix(id, "mail/") {
				t.Fatalf("enqueue with delay: %d %s", a.code, a.raw)
			}
			a = call(t, ts, "GET", "/v1/keys/mail/scheduled", "", "")
			jobs, _ := a.body["jobs"].([]any)
			if a.code != 200 || len(jobs) != 1 {
				t.Fatalf("scheduled: %d %s", a.code, a.raw)
			}
			if j := jobs[0].(map[string]any); j["id"] != id || j["handler"] != "echo" || j["priority"] != "high" || j["payload_bytes"] != 5.0 {
				t.Fatalf("scheduled job: %s", a.raw)
			}
			if a := call(t, ts, "GET", "/v1/keys/mail", "", ""); a.body["jobs_scheduled"] != 1.0 {
				t.Fatalf("status: %s", a.raw)
			}
			uuid := strings.TrimPrefix(id, "mail/")
			if a := call(t, ts, "DELETE", "/v1/jobs/mail/"+uuid, "", ""); a.code != 200 || a.body["state"] != "cancelled" {
				t.Fatalf("cancel: %d %s", a.code, a.raw)
			}
			if a := call(t, ts, "GET", "/v1/jobs/mail/"+uuid, "", ""); a.code != 200 || a.body["state"] != "cancelled" {
				t.Fatalf("state after cancel: %d %s", a.code, a.raw)
			}
			if a := call(t, ts, "DELETE", "/v1/jobs/mail/"+uuid, "", ""); a.code != 404 {
				t.Fatalf("cancel again: %d %s; want 404", a.code, a.raw)
			}
			a = call(t, ts, "POST", "/v1/jobs/mail?handler=echo&run_at=2001-01-01T00:00:00Z", "", "now")
			uuid = strings.TrimPrefix(a.body["id"].(string), "mail/")
			if a := call(t, ts, "GET", "/v1/jobs/mail/"+uuid+"?wait=10s", "", ""); a.body["state"] != "done" {
				t.Fatalf("a job of a past run_at: %d %s", a.code, a.raw)
			}
			for _, q := range []string{"delay=soon", "delay=-1s", "run_at=tomorrow", "delay=1s&run_at=2001-01-01T00:00:00Z"} {
				if a := call(t, ts, "POST", "/v1/jobs/mail?handler=echo&"+q, "", "x"); a.code != 400 {
					t.Fatalf("%s: %d %s; want 400", q, a.code, a.raw)
				}
			}
			if a := call(t, ts, "GET", "/v1/keys/mail/scheduled?n=0", "", ""); a.code != 400 {
				t.Fatalf("n=0: %d; want 400", a.code)
			}
		})
	}
}
