package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
)

// TestJobsScheduledAndCancel: `rateltd jobs scheduled KEY` lists a scheduled job, as a table
// and as JSON, and status counts it under SCHEDULED; `rateltd jobs cancel ID` cancels it, and its Wait returns ErrCancelled.
func TestJobsScheduledAndCancel(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	if code, out, _ := c.run("jobs", "scheduled", "jobs:k"); code != 0 || out != "jobs:k: no scheduled jobs\n" {
		t.Fatalf("scheduled of nothing: %d %q", code, out)
	}
	id, err := c.lib.Enqueue(ctx, "jobs:k", "mail", []byte("hello"), rateltd.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := c.run("jobs", "scheduled", "jobs:k"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "RUN AT") {
		t.Fatalf("scheduled: %d %q %q", code, out, errOut)
	}
	// The status table counts it: one job, none running, one scheduled.
	code, out, _ := c.run("status", "jobs:k")
	if flat := strings.Join(strings.Fields(out), " "); code != 0 || !strings.Contains(flat, "JOBS (running) SCHEDULED DEAD LETTERS") ||
		!strings.HasSuffix(flat, " 1 (0) 1 0") {
		t.Fatalf("status of a key with a scheduled job: %d %q", code, out)
	}
	code, out, _ = c.run("jobs", "scheduled", "jobs:k", "--json")
	var sjs []httpapi.ScheduledJSON
	if code != 0 || json.Unmarshal([]byte(out), &sjs) != nil || len(sjs) != 1 || sjs[0].ID != id || sjs[0].Handler != "mail" {
		t.Fatalf("scheduled --json: %d %q", code, out)
	}
	if code, out, errOut := c.run("jobs", "cancel", id); code != 0 || out != id+": cancelled\n" {
		t.Fatalf("cancel: %d %q %q", code, out, errOut)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.lib.Wait(wctx, id); !errors.Is(err, rateltd.ErrCancelled) {
		t.Fatalf("Wait after jobs cancel: %v", err)
	}
	if code, _, errOut := c.run("jobs", "cancel", id); code == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("cancel again: %d %q; want not found", code, errOut)
	}
	if code, _, _ := c.run("jobs", "list", "jobs:k"); code == 0 {
		t.Fatal("jobs list: want a usage error")
	}
}
