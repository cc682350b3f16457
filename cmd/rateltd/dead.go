package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
)

// deadJSON is a dead letter as `rateltd dead --json` prints it.
type deadJSON struct {
	JobID      string    `json:"job_id,omitempty"`
	Handler    string    `json:"handler,omitempty"`
	Payload    []byte    `json:"payload"` // base64
	Failures   int       `json:"failures,omitempty"`
	LeasesLost int       `json:"leases_lost,omitempty"`
	Error      string    `json:"error,omitempty"`
	At         time.Time `json:"at,omitzero"`
	Corrupt    []byte    `json:"corrupt,omitempty"` // base64: the bytes of a corrupt ticket
}

func init() {
	var (
		n      int
		asJSON bool
	)
	commands = append(commands, &command{name: "dead", args: "KEY",
		help: "Show KEY's dead letters, oldest first: durable jobs that failed for the last time (id, handler, failed runs, last error) and corrupt tickets.",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&n, "n", 20, "how many of the latest to show (1-1000)")
			fs.BoolVar(&asJSON, "json", false, "print JSON, payloads in base64")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("dead: want exactly one key, got %d", len(args))
			}
			if err := config.ValidateKey(args[0]); err != nil {
				return usageError{err.Error()}
			}
			if n < 1 || n > 1000 {
				return usagef("dead: -n must be 1 to 1000, got %d", n)
			}
			c, closeAll, err := e.client(ctx, false, nil)
			if err != nil {
				return err
			}
			defer closeAll()
			dls, err := c.DeadLetters(ctx, args[0], n)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]deadJSON, len(dls))
				for i, d := range dls {
					out[i] = deadJSON{JobID: d.JobID, Handler: d.Handler, Payload: d.Payload, Failures: d.Failures,
						LeasesLost: d.LeasesLost, Error: d.Error, At: d.At.UTC(), Corrupt: d.Raw}
				}
				return json.NewEncoder(e.out).Encode(out)
			}
			printDead(e, args[0], dls)
			return nil
		}})
}

func printDead(e *env, key string, dls []rateltd.DeadLetter) {
	if len(dls) == 0 {
		fmt.Fprintf(e.out, "%s: no dead letters\n", key)
		return
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tJOB\tHANDLER\tRUNS FAILED\tLEASES LOST\tPAYLOAD\tERROR")
	for _, d := range dls {
		if d.JobID == "" {
			fmt.Fprintf(tw, "-\t(corrupt ticket)\t-\t-\t-\t%d bytes\t-\n", len(d.Raw))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d bytes\t%s\n", d.At.Format(time.DateTime), d.JobID, d.Handler, d.Failures,
			d.LeasesLost, len(d.Payload), strconv.Quote(d.Error))
	}
	tw.Flush()
}
