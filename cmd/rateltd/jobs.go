package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/httpapi"
)

func init() {
	var (
		n      int
		asJSON bool
	)
	commands = append(commands, &command{name: "jobs", args: "scheduled KEY | cancel ID",
		help: "List KEY's scheduled durable jobs (enqueued with WithDelay or WithRunAt), the earliest due first,\n" +
			"or cancel the durable job ID (as Enqueue returned it, KEY/UUID): a waiting or scheduled job ends\n" +
			"at once (its Wait returns ErrCancelled); a running one's handler is asked to stop.",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&n, "n", 20, "scheduled: how many of the earliest to show (1-1000)")
			fs.BoolVar(&asJSON, "json", false, "scheduled: print JSON")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 2 || (args[0] != "scheduled" && args[0] != "cancel") {
				return usagef("jobs: want \"scheduled KEY\" or \"cancel ID\"")
			}
			if args[0] == "scheduled" {
				if err := config.ValidateKey(args[1]); err != nil {
					return usageError{err.Error()}
				}
				if n < 1 || n > 1000 {
					return usagef("jobs scheduled: -n must be 1 to 1000, got %d", n)
				}
			}
			c, closeAll, err := e.client(ctx, false, nil)
			if err != nil {
				return err
			}
			defer closeAll()
			if args[0] == "cancel" {
				if err := c.CancelJob(ctx, args[1]); err != nil {
					return err
				}
				fmt.Fprintf(e.out, "%s: cancelled\n", args[1])
				return nil
			}
			sjs, err := c.ScheduledJobs(ctx, args[1], n)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]httpapi.ScheduledJSON, len(sjs))
				for i, s := range sjs {
					out[i] = httpapi.ScheduledJSON{ID: s.ID, Handler: s.Handler, Priority: s.Priority.String(), RunAt: s.RunAt.UTC(),
						PayloadBytes: len(s.Payload)}
				}
				return json.NewEncoder(e.out).Encode(out)
			}
			printScheduled(e, args[1], sjs)
			return nil
		}})
}

func printScheduled(e *env, key string, sjs []rateltd.ScheduledJob) {
	if len(sjs) == 0 {
		fmt.Fprintf(e.out, "%s: no scheduled jobs\n", key)
		return
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN AT\tIN\tJOB\tHANDLER\tPRIORITY\tPAYLOAD")
	for _, s := range sjs {
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%d bytes\n", s.RunAt.Format(time.DateTime), time.Until(s.RunAt).Round(time.Second), s.ID,
			s.Handler, s.Priority, len(s.Payload))
	}
	tw.Flush()
}
