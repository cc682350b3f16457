package httpapi_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
	"github.com/rateltd/rateltd/internal/redistest"
	"github.com/rateltd/rateltd/internal/testnode"
)

// TestJobs: a durable job enqueued over HTTP runs on a Go handler; its result, a failure, an
// unknown id and bad input each get their answer.
func TestJobs(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			ts, c := server(t, backend, rateltd.Config{MaxPayload: 32, Default: rateltd.Limit{Max: 100, Window: time.Second, MaxQueue: 2}},
				httpapi.Options{})
			// Before any node runs the handler: queued only when asked to.
			a := call(t, ts, "POST", "/v1/jobs/mail?handler=upper&name=welcome-1&allow_unknown=1", "", "hello")
			id, _ := a.body["id"].(string)
			if a.code != 201 || !strings.HasPrefix(id, "mail/") {
				t.Fatalf("enqueue: %d %s", a.code, a.raw)
			}
			if again := call(t, ts, "POST", "/v1/jobs/mail?handler=upper&name=welcome-1&allow_unknown=1", "", "hello"); again.body["id"] != id {
				t.Fatalf("enqueue of the same name: %d %s; want id %s", again.code, again.raw, id)
			}
			uuid := strings.TrimPrefix(id, "mail/")
			if a := call(t, ts, "GET", "/v1/jobs/mail/"+uuid, "", ""); a.code != 202 || a.body["state"] != "pending" {
				t.Fatalf("before any node runs it: %d %s", a.code, a.raw)
			}
			if err := c.Handle("upper", func(_ context.Context, p []byte) ([]byte, error) {
				if string(p) == "boom" {
					return nil, errors.New("no such mailbox")
				}
				return []byte(strings.ToUpper(string(p))), nil
			}); err != nil {
				t.Fatal(err)
			}
			a = call(t, ts, "GET", "/v1/jobs/mail/"+uuid+"?wait=10s", "", "")
			if a.code != 200 || a.body["state"] != "done" || a.body["result"] != base64.StdEncoding.EncodeToString([]byte("HELLO")) {
				t.Fatalf("result: %d %s", a.code, a.raw)
			}
			a = call(t, ts, "POST", "/v1/jobs/mail?handler=upper", "", "boom")
			failed := strings.TrimPrefix(a.body["id"].(string), "mail/")
			if a := call(t, ts, "GET", "/v1/jobs/mail/"+failed+"?wait=10s", "", ""); a.code != 200 || a.body["state"] != "failed" || a.body["error"] != "no such mailbox" {
				t.Fatalf("failed job: %d %s", a.code, a.raw)
			}
			if err := c.Pause(context.Background(), "full"); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				call(t, ts, "POST", "/v1/jobs/full?handler=upper", "", "x")
			}
			for _, tc := range []struct {
				method, path, body string
				code               int
				want               string
			}{
				{"GET", "/v1/jobs/mail/00000000-0000-0000-0000-000000000000", "", 404, "job not found"},
				{"GET", "/v1/jobs/mail/nope", "", 404, "not a job id"},
				{"GET", "/v1/jobs/mail/" + uuid + "?wait=forever", "", 400, "wait"},
				{"POST", "/v1/jobs/mail", "x", 400, "handler"},
				{"POST", "/v1/jobs/mail?handler=upper&retries=-1", "x", 400, "retries"},
				{"POST", "/v1/jobs/mail?handler=upper&priority=urgent", "x", 400, "urgent"},
				{"POST", "/v1/jobs/mail?handler=upper&timeout=soon", "x", 400, "timeout"},
				{"POST", "/v1/jobs/a%7Bb?handler=upper", "x", 400, "invalid key"},
				{"POST", "/v1/jobs/mail?handler=upper", strings.Repeat("x", 33), 413, "payload too large"},
				{"POST", "/v1/jobs/full?handler=upper", "x", 429, "queue full"},
			} {
				a := call(t, ts, tc.method, tc.path, "", tc.body)
				if a.code != tc.code || !strings.Contains(a.raw, tc.want) {
					t.Errorf("%s %s: %d %s; want %d with %q", tc.method, tc.path, a.code, a.raw, tc.code, tc.want)
				}
			}
		})
	}
}

// TestJobsUnknownHandler: a job for a handler that no live node runs is refused with 422
// naming the handler, unless allow_unknown=1; once a node (this one, or another on the same
// Redis) registers the handler, the same enqueue is taken.
func TestJobsUnknownHandler(t *testing.T) {
	for _, backend := range testnode.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var prefix string // one for both nodes on Redis
			if backend == "redis" {
				prefix = redistest.Server(t).Prefix(t)
			}
			ts, c := server(t, backend, rateltd.Config{Prefix: prefix}, httpapi.Options{})
			for _, tc := range []struct {
				query string
				code  int
				want  string
			}{
				{"handler=nobody", 422, `handler \"nobody\": no live node runs it`},
				{"handler=nobody&allow_unknown=0", 422, "allow_unknown=1"},
				{"handler=nobody&allow_unknown=maybe", 400, "allow_unknown"},
				{"handler=nobody&allow_unknown=1", 201, `"state":"pending"`},
				{"handler=nobody&allow_unknown=true", 201, `"state":"pending"`},
			} {
				a := call(t, ts, "POST", "/v1/jobs/unknown?"+tc.query, "", "x")
				if a.code != tc.code || !strings.Contains(a.raw, tc.want) || a.header.Get("Content-Type") != "application/json" {
					t.Errorf("%s: %d %s; want %d with %q", tc.query, a.code, a.raw, tc.code, tc.want)
				}
			}

			// Registered here: taken at once, with no round trip to learn it.
			if err := c.Handle("local", func(context.Context, []byte) ([]byte, error) { return nil, nil }); err != nil {
				t.Fatal(err)
			}
			if a := call(t, ts, "POST", "/v1/jobs/unknown?handler=local", "", "x"); a.code != 201 {
				t.Fatalf("a handler this node runs: %d %s", a.code, a.raw)
			}
			if backend != "redis" {
				return
			}
			// Registered on another node of the same Redis: taken once that node has recorded it.
			other := testnode.Client(t, backend, rateltd.Config{Prefix: prefix, PollInterval: 200 * time.Millisecond})
			if err := other.Handle("remote", func(context.Context, []byte) ([]byte, error) { return nil, nil }); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				a := call(t, ts, "POST", "/v1/jobs/unknown?handler=remote", "", "x")
				if a.code == 201 {
					break
				}
				if a.code != 422 || time.Now().After(deadline) {
					t.Fatalf("a handler another live node runs: %d %s", a.code, a.raw)
				}
				time.Sleep(10 * time.Millisecond)
			}
			// Gone when the other node closes and its heartbeat lapses.
			other.Close()
			deadline = time.Now().Add(30 * time.Second)
			for {
				live, err := c.HandlerLive(context.Background(), "remote")
				if err != nil {
					t.Fatal(err)
				}
				if !live {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the handler of a closed node still counts as live after 30s")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if a := call(t, ts, "POST", "/v1/jobs/unknown?handler=remote", "", "x"); a.code != 422 {
				t.Fatalf("a handler whose node is gone: %d %s", a.code, a.raw)
			}
		})
	}
}
