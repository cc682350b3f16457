package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/httpapi"
)

func init() {
	var interval time.Duration
	var times int
	var asJSON bool
	commands = append(commands,
		&command{name: "status", args: "[KEY...]",
			help: "Show each key: limit, used/remaining, queued per priority, oldest wait, pause, counters,\n" +
				"durable jobs (not ended, running, scheduled: enqueued with a delay or a time to run at).\n" +
				"Used/remaining are the tightest rate's; keys whose limit has several rates or counts cost\n" +
				"units get a second table with each rate (used/remaining, in requests or units) and the\n" +
				"settled-units counters (grants settled, units given back, units charged over); keys with a\n" +
				"concurrency cap, a table of slots (cap, in flight, free). For a cap alone, used/remaining are\n" +
				"the slots held and free. Keys with a shadow limit (limit set --shadow) get a table of what\n" +
				"the limit would have done: allowed, would queue (longest and mean would-be wait), would refuse;\n" +
				"keys with an adaptive limit (limit set --adaptive), the limit configured and the one in force\n" +
				"now (lower where the upstream cut it). --json carries it as \"effective\" beside \"limit\".\n" +
				"Keys with tenants waiting (rateltd.WithTenant, ?tenant=) get a table of how many tenants wait\n" +
				"and the 10 with the most waiting (\"-\" for requests of no tenant); --json has them as\n" +
				"\"tenants\" and \"tenants_waiting\".\n" +
				"Without keys, every key with state. Limits configured only in a service's code are not\n" +
				"known here: the command shows runtime limits (limit set) and those of --config.",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&asJSON, "json", false, "print JSON (an array of statuses)")
			},
			run: func(ctx context.Context, e *env, args []string) error {
				return status(ctx, e, args, asJSON, 0, 1)
			}},
		&command{name: "watch", args: "[KEY...]", help: "status, refreshing in place until Ctrl-C.",
			flags: func(fs *flag.FlagSet) {
				fs.DurationVar(&interval, "interval", time.Second, "time between refreshes")
				fs.IntVar(&times, "times", 0, "stop after this many refreshes (0: until Ctrl-C)")
			},
			run: func(ctx context.Context, e *env, args []string) error {
				if interval < 10*time.Millisecond {
					return usagef("--interval %v: at least 10ms", interval)
				}
				return status(ctx, e, args, false, interval, times)
			}},
	)
}

func status(ctx context.Context, e *env, keys []string, asJSON bool, every time.Duration, times int) error {
	c, closeAll, err := e.client(ctx, false, nil)
	if err != nil {
		return err
	}
	defer closeAll()
	for i := 0; times == 0 || i < times; i++ {
		sts, err := statuses(ctx, c, keys)
		if err != nil {
			return err
		}
		if asJSON {
			out := make([]httpapi.StatusJSON, len(sts))
			for i, st := range sts {
				out[i] = httpapi.StatusToJSON(st)
			}
			enc := json.NewEncoder(e.out)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		if every > 0 {
			fmt.Fprint(e.out, "\x1b[H\x1b[2J") // home and clear: refresh in place
			fmt.Fprintf(e.out, "rateltd watch — %s — every %v, Ctrl-C to stop\n\n", time.Now().Format(time.TimeOnly), every)
		}
		table(e.out, sts)
		if every == 0 {
			return nil
		}
		if times != 0 && i == times-1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
	return nil
}

// statuses reads the named keys, or every key with state.
func statuses(ctx context.Context, c *rateltd.Client, keys []string) ([]rateltd.Status, error) {
	if len(keys) == 0 {
		seen := map[string]bool{}
		cursor := ""
		for {
			page, next, err := c.ListKeys(ctx, cursor, 500)
			if err != nil {
				return nil, err
			}
			for _, k := range page {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
			if cursor = next; cursor == "" {
				break
			}
		}
	}
	sts := make([]rateltd.Status, 0, len(keys))
	for _, k := range keys {
		st, err := c.Status(ctx, k)
		if err != nil {
			return nil, err
		}
		sts = append(sts, st)
	}
	return sts, nil
}

func table(w io.Writer, sts []rateltd.Status) {
	if len(sts) == 0 {
		fmt.Fprintln(w, "no keys with state")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tLIMIT\tUSED\tREMAINING\tQUEUED crit/high/norm/low\tOLDEST WAIT\tPAUSED\tADMITTED\tGRANTED\tEXPIRED\tREJECTED\tFAILED\tJOBS (running)\tSCHEDULED\tDEAD LETTERS")
	for _, st := range sts {
		q := st.QueuedByPriority
		paused := "no"
		if st.Paused {
			paused = "yes"
			if !st.PausedUntil.IsZero() {
				paused = "until " + st.PausedUntil.Format(time.TimeOnly)
			}
		}
		c := st.Counters
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d (%d/%d/%d/%d)\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d (%d)\t%d\t%d\n", st.Key, limitString(st.Limit), st.Used, st.Remaining,
			st.Queued, q[rateltd.PriorityCritical], q[rateltd.PriorityHigh], q[rateltd.PriorityNormal], q[rateltd.PriorityLow],
			st.OldestWait.Round(time.Millisecond), paused, c.Admitted, c.Granted, c.Expired, c.Rejected, c.Failed,
			st.Jobs, st.JobsRunning, st.JobsScheduled, st.DeadLetters)
	}
	tw.Flush()
	rates(w, sts)
	slots(w, sts)
	shadows(w, sts)
	adaptives(w, sts)
	tenants(w, sts)
}

// keyTable writes, under header, a table of the keys of sts that keep says belong in it, each
// key's lines written by rows; nothing when no key does.
func keyTable(w io.Writer, sts []rateltd.Status, header string, keep func(rateltd.Status) bool, rows func(io.Writer, rateltd.Status)) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	headed := false
	for _, st := range sts {
		if !keep(st) {
			continue
		}
		if !headed {
			fmt.Fprintln(tw, "\n"+header)
			headed = true
		}
		rows(tw, st)
	}
	tw.Flush()
}

// tenants writes, for the keys with tenants waiting, how many tenants wait and those with the
// most waiting (Status.Tenants), one a line; "-" stands for the requests of no tenant.
func tenants(w io.Writer, sts []rateltd.Status) {
	keyTable(w, sts, "KEY\tTENANTS WAITING\tTENANT\tWAITING",
		func(st rateltd.Status) bool { return st.TenantsWaiting > 0 },
		func(tw io.Writer, st rateltd.Status) {
			for i, t := range st.Tenants {
				key, n := "", ""
				if i == 0 {
					key, n = st.Key, strconv.Itoa(st.TenantsWaiting)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", key, n, cmp.Or(t.Tenant, "-"), t.Waiting)
			}
		})
}

// adaptives writes, for the keys with an adaptive limit, the limit configured and the one in
// force now (Status.Effective): the same, or, where the upstream cut it, its rates scaled down.
func adaptives(w io.Writer, sts []rateltd.Status) {
	keyTable(w, sts, "KEY\tADAPTIVE LIMIT\tIN FORCE",
		func(st rateltd.Status) bool { return st.Limit.Adaptive },
		func(tw io.Writer, st rateltd.Status) {
			configured, effective := st.Limit, st.Effective
			configured.Adaptive, effective.Adaptive = false, false
			fmt.Fprintf(tw, "%s\t%s\t%s\n", st.Key, limitString(configured), limitString(effective))
		})
}

// shadows writes, for the keys with a shadow limit, what the limit would have done with the
// requests it let run: allowed, queued (with their would-be waits, the longest and the mean)
// and refused.
func shadows(w io.Writer, sts []rateltd.Status) {
	keyTable(w, sts, "KEY\tSHADOW ALLOWED\tWOULD QUEUE\tLONGEST WAIT\tMEAN WAIT\tWOULD REFUSE",
		func(st rateltd.Status) bool { return st.Limit.Shadow },
		func(tw io.Writer, st rateltd.Status) {
			sh := st.Counters.Shadow
			mean := time.Duration(0)
			if sh.Queued > 0 {
				mean = sh.Wait / time.Duration(sh.Queued)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\n", st.Key, sh.Allowed, sh.Queued, sh.MaxWait.Round(time.Millisecond),
				mean.Round(time.Millisecond), sh.Refused)
		})
}

// rates writes, for the keys whose limit has several rates or counts cost units, what each
// rate counts and the key's settled-units counters.
func rates(w io.Writer, sts []rateltd.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := false
	for _, st := range sts {
		if len(st.Rates) < 2 && !st.Limit.Units {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "\nKEY\tRATE\tCOUNTS\tUSED\tREMAINING\tSETTLED\tUNITS RETURNED\tUNITS OVER")
			header = true
		}
		u := st.Counters.Units
		for i, r := range st.Rates {
			counts := "requests"
			if r.Rate.Units {
				counts = "units"
			}
			fmt.Fprintf(tw, "%s\t%d/%s\t%s\t%d\t%d", st.Key, r.Rate.Max, shortDuration(r.Rate.Window), counts, r.Used, r.Remaining)
			if i == 0 {
				fmt.Fprintf(tw, "\t%d\t%d\t%d", u.Settled, u.Returned, u.Over)
			}
			fmt.Fprintln(tw)
		}
	}
	tw.Flush()
}

// slots writes, for the keys with a concurrency cap, the cap and the slots held (in flight)
// and free now.
func slots(w io.Writer, sts []rateltd.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := false
	for _, st := range sts {
		if st.Limit.Concurrency == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "\nKEY\tCONCURRENCY\tIN FLIGHT\tFREE")
			header = true
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", st.Key, st.Limit.Concurrency, st.InFlight, max(st.Limit.Concurrency-st.InFlight, 0))
	}
	tw.Flush()
}

// limitString writes l as "500/1m sliding", its further rates after it: "500/1m sliding +
// 30000 units/1m". A rate that counts cost units says so; a token bucket's rates, their burst.
// A concurrency cap comes last, ", concurrency 20", or alone: "concurrency 4"; a shadow limit
// ends with ", shadow", an adaptive one with ", adaptive"; then the tenants' weights,
// ", tenant weights gold=3,silver=2", and ", max 100 queued per tenant".
func limitString(l rateltd.Limit) string {
	shadow := ""
	if l.Shadow {
		shadow = ", shadow"
	}
	if l.Adaptive {
		shadow += ", adaptive"
	}
	if w, err := config.WeightsString(l.TenantWeights); err == nil && w != "" {
		shadow += ", tenant weights " + w
	}
	if l.MaxQueuePerTenant > 0 {
		shadow += fmt.Sprintf(", max %d queued per tenant", l.MaxQueuePerTenant)
	}
	capped := fmt.Sprintf("concurrency %d", l.Concurrency)
	if l.Max == 0 && l.Window == 0 && l.Concurrency > 0 {
		return capped + shadow // a cap alone
	}
	s := rateString(rateltd.Rate{Max: l.Max, Window: l.Window, Units: l.Units}, false) + " " + l.Algorithm.String()
	if l.Algorithm == rateltd.TokenBucket {
		s += fmt.Sprintf(" burst %d", l.Burst)
	}
	for _, r := range l.Also {
		s += " + " + rateString(r, l.Algorithm == rateltd.TokenBucket)
	}
	if l.Concurrency > 0 {
		s += ", " + capped
	}
	return s + shadow
}

// rateString writes r as "5/1s" or "30000 units/1m", with its burst when burst is set.
func rateString(r rateltd.Rate, burst bool) string {
	s := strconv.Itoa(r.Max)
	if r.Units {
		s += " units"
	}
	s += "/" + shortDuration(r.Window)
	if burst {
		s += fmt.Sprintf(" burst %d", r.Burst)
	}
	return s
}

// shortDuration writes 1m rather than 1m0s, 2h rather than 2h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
