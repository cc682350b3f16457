package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/httpapi"
)

// limitFlags are the flags of limit.
type limitFlags struct {
	max, burst, concurrency int
	window                  time.Duration
	algorithm               string
	units, shadow, adaptive bool
	also                    alsoFlag
	weights                 weightsFlag
	maxQueuePerTenant       int
	asJSON                  bool
}

func init() {
	var lf limitFlags
	commands = append(commands,
		&command{name: "pause", args: "NAME", help: "Pause NAME: a key, and every key of the group NAME; \"*\" pauses everything.",
			run: func(ctx context.Context, e *env, args []string) error {
				return withName(ctx, e, args, "paused", (*rateltd.Client).Pause)
			}},
		&command{name: "resume", args: "NAME", help: "End the pause of NAME (a key, a group or \"*\").",
			run: func(ctx context.Context, e *env, args []string) error {
				return withName(ctx, e, args, "resumed", (*rateltd.Client).Resume)
			}},
		&command{name: "reset", args: "KEY", help: "Clear KEY's window, line and counters; requests waiting for it end with ErrEvicted.",
			run: func(ctx context.Context, e *env, args []string) error {
				return withName(ctx, e, args, "reset", (*rateltd.Client).Reset)
			}},
		&command{name: "limit",
			args: "get KEY | set KEY --max N --window D [--algorithm A] [--burst N] [--units] [--also MAX/WINDOW[/units][/burst=N]]... [--concurrency N] [--shadow] [--tenant-weight NAME=W]... [--max-queue-per-tenant N] | unset KEY",
			help: "Show the limit in force for KEY, set it for every node at run time, or remove the one set.\n" +
				"--units makes --max count cost units (a request's cost, rateltd.WithCost or ?cost=) rather than\n" +
				"requests. --also adds a further rate, kept by the same algorithm; repeat it, up to 4 times. A\n" +
				"request starts only when every rate admits it. --concurrency caps how many of KEY's requests\n" +
				"and jobs run at once, across all nodes; alone, without --max and --window, it sets a cap with\n" +
				"no rate. --shadow watches the limit without enforcing it: every request runs at once, and\n" +
				"status counts what the limit would have done (allowed, queued and for how long, refused).\n" +
				"--adaptive makes the limit in force follow the upstream: halved by its refusals, brought down\n" +
				"to a limit it states, grown back by a tenth a window of successes.\n" +
				"--tenant-weight NAME=W weighs tenant NAME's share of KEY's line (rateltd.WithTenant, ?tenant=):\n" +
				"while several tenants wait, one of weight 3 is served 3 for each 1 of a tenant of weight 1\n" +
				"(the default); repeat it per tenant. --max-queue-per-tenant N bounds how many one tenant may\n" +
				"have waiting; past it that tenant is refused while others still queue.\n" +
				"Examples, 500 requests and 30,000 tokens a minute, and 10 requests a second; at most 4\n" +
				"renders running at once; 100 a second on stripe, watched before it binds:\n" +
				"  rateltd limit set openai --max 500 --window 1m --also 30000/1m/units --also 10/1s\n" +
				"  rateltd limit set render --concurrency 4\n" +
				"  rateltd limit set stripe --max 100 --window 1s --shadow\n" +
				"  rateltd limit set shared --max 100 --window 1s --tenant-weight gold=3 --max-queue-per-tenant 100",
			flags: func(fs *flag.FlagSet) {
				fs.IntVar(&lf.max, "max", 0, "set: how many may start per window")
				fs.DurationVar(&lf.window, "window", 0, "set: the window, such as 1s or 1m")
				fs.StringVar(&lf.algorithm, "algorithm", "sliding", "set: sliding, fixed or token")
				fs.IntVar(&lf.burst, "burst", 0, "set: the token bucket's burst (token only; default max)")
				fs.BoolVar(&lf.units, "units", false, "set: --max counts cost units, not requests")
				lf.also = nil // fs.Var sets no default: each run starts with none
				fs.Var(&lf.also, "also", "set: a further rate MAX/WINDOW, /units to count cost units, /burst=N for token; repeatable")
				fs.IntVar(&lf.concurrency, "concurrency", 0, "set: at most this many running at once (0: no cap); alone, a cap with no rate")
				fs.BoolVar(&lf.shadow, "shadow", false, "set: watch the limit without enforcing it (every request runs at once)")
				fs.BoolVar(&lf.adaptive, "adaptive", false, "set: the limit in force follows the upstream (its refusals, its stated limit)")
				lf.weights = nil
				fs.Var(&lf.weights, "tenant-weight", "set: tenant NAME=W weighs W (1 to 1000) in the line's fair shares; repeatable")
				fs.IntVar(&lf.maxQueuePerTenant, "max-queue-per-tenant", 0, "set: at most this many waiting per tenant (0: no bound)")
				fs.BoolVar(&lf.asJSON, "json", false, "get: print JSON")
			},
			run: func(ctx context.Context, e *env, args []string) error { return limit(ctx, e, args, lf) }},
	)
}

// limit runs limit get, set and unset.
func limit(ctx context.Context, e *env, args []string, lf limitFlags) error {
	if len(args) != 2 || (args[0] != "get" && args[0] != "set" && args[0] != "unset") {
		return usagef("limit: want 'limit get KEY', 'limit set KEY --max N --window D', 'limit set KEY --concurrency N' or 'limit unset KEY'")
	}
	key := args[1]
	if err := config.ValidateKey(key); err != nil {
		return usageError{err.Error()}
	}
	c, closeAll, err := e.client(ctx, false, nil)
	if err != nil {
		return err
	}
	defer closeAll()
	if args[0] == "unset" {
		if err := c.SetLimit(ctx, key, rateltd.Limit{}); err != nil {
			return err
		}
	}
	if args[0] == "set" {
		alg, err := config.ParseAlgorithm(lf.algorithm)
		if err != nil {
			return usageError{err.Error()}
		}
		l := rateltd.Limit{Algorithm: alg, Max: lf.max, Window: lf.window, Burst: lf.burst, Units: lf.units,
			Also: lf.also, Concurrency: lf.concurrency, Shadow: lf.shadow, Adaptive: lf.adaptive,
			TenantWeights: lf.weights, MaxQueuePerTenant: lf.maxQueuePerTenant}
		if err := setLimit(ctx, c, key, l); err != nil {
			return err
		}
	}
	l, err := c.LimitOf(key)
	if err != nil {
		return err
	}
	if lf.asJSON {
		return json.NewEncoder(e.out).Encode(httpapi.LimitToJSON(l))
	}
	fmt.Fprintf(e.out, "%s: %s\n", key, limitString(l))
	return nil
}

// setLimit sets l for key at run time; a limit out of range is a usage error.
func setLimit(ctx context.Context, c *rateltd.Client, key string, l rateltd.Limit) error {
	if err := l.ValidateAs("limit"); err != nil {
		return usageError{err.Error()}
	}
	return c.SetLimit(ctx, key, l)
}

// alsoFlag is the repeated --also of limit set: each MAX/WINDOW[/units][/burst=N] adds a rate.
type alsoFlag []rateltd.Rate

func (f *alsoFlag) String() string {
	if f == nil {
		return ""
	}
	parts := make([]string, len(*f))
	for i, r := range *f {
		parts[i] = rateString(r, r.Burst != 0)
	}
	return strings.Join(parts, ", ")
}

// Set parses one --also: MAX/WINDOW, then /units and /burst=N in either order.
func (f *alsoFlag) Set(s string) error {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 4 {
		return fmt.Errorf("%q: want MAX/WINDOW[/units][/burst=N], such as 30000/1m/units", s)
	}
	var r rateltd.Rate
	var err error
	if r.Max, err = strconv.Atoi(parts[0]); err != nil {
		return fmt.Errorf("%q: max %q is not a whole number", s, parts[0])
	}
	if r.Window, err = time.ParseDuration(parts[1]); err != nil {
		return fmt.Errorf("%q: window %q is not a duration such as 1s or 1m", s, parts[1])
	}
	for _, p := range parts[2:] {
		b, isBurst := strings.CutPrefix(p, "burst=")
		switch {
		case p == "units" && !r.Units:
			r.Units = true
		case isBurst && r.Burst == 0:
			if r.Burst, err = strconv.Atoi(b); err != nil || r.Burst < 1 {
				return fmt.Errorf("%q: burst %q: want a whole number from 1", s, b)
			}
		default:
			return fmt.Errorf("%q: %q: want units or burst=N (each once) after MAX/WINDOW", s, p)
		}
	}
	*f = append(*f, r)
	return nil
}

// weightsFlag is the repeated --tenant-weight of limit set: each NAME=W weighs a tenant.
type weightsFlag map[string]int

func (f *weightsFlag) String() string {
	if f == nil {
		return ""
	}
	s, _ := config.WeightsString(*f)
	return s
}

// Set parses one --tenant-weight NAME=W.
func (f *weightsFlag) Set(s string) error {
	name, w, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(w)
	if !ok || err != nil {
		return fmt.Errorf("%q: want NAME=W, such as gold=3", s)
	}
	if _, err := config.WeightsString(map[string]int{name: n}); err != nil {
		return err
	}
	if _, dup := (*f)[name]; dup {
		return fmt.Errorf("%q: tenant %q given twice", s, name)
	}
	if *f == nil {
		*f = weightsFlag{}
	}
	(*f)[name] = n
	return nil
}

// withName runs a one-name admin command.
func withName(ctx context.Context, e *env, args []string, done string, f func(*rateltd.Client, context.Context, string) error) error {
	if len(args) != 1 {
		return usagef("want exactly one name, got %d", len(args))
	}
	if args[0] == "*" && done == "reset" {
		return usagef("reset: \"*\" names every key for pause and resume, not a key to reset")
	}
	if args[0] != "*" {
		if err := config.ValidateKey(args[0]); err != nil {
			return usageError{err.Error()}
		}
	}
	c, closeAll, err := e.client(ctx, false, nil)
	if err != nil {
		return err
	}
	defer closeAll()
	if err := f(c, ctx, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "%s %s\n", args[0], done)
	return nil
}
