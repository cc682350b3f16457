package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/httpapi"
)

func init() {
	var (
		max, burst int
		window     time.Duration
		algorithm  string
		asJSON     bool
	)
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
		&command{name: "limit", args: "get KEY | set KEY --max N --window D [--algorithm A] [--burst N] | unset KEY",
			help: "Show the limit in force for KEY, set it for every node at run time, or remove the one set.",
			flags: func(fs *flag.FlagSet) {
				fs.IntVar(&max, "max", 0, "set: how many may start per window")
				fs.DurationVar(&window, "window", 0, "set: the window, such as 1s or 1m")
				fs.StringVar(&algorithm, "algorithm", "sliding", "set: sliding, fixed or token")
				fs.IntVar(&burst, "burst", 0, "set: the token bucket's burst (token only; default max)")
				fs.BoolVar(&asJSON, "json", false, "get: print JSON")
			},
			run: func(ctx context.Context, e *env, args []string) error {
				if len(args) != 2 || (args[0] != "get" && args[0] != "set" && args[0] != "unset") {
					return usagef("limit: want 'limit get KEY', 'limit set KEY --max N --window D' or 'limit unset KEY'")
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
					alg, err := config.ParseAlgorithm(algorithm)
					if err != nil {
						return usageError{err.Error()}
					}
					l := rateltd.Limit{Algorithm: alg, Max: max, Window: window, Burst: burst}
					if err := l.WithDefaults().ValidateAs("limit"); err != nil {
						return usageError{err.Error()}
					}
					if err := c.SetLimit(ctx, key, l); err != nil {
						return err
					}
				}
				l, err := c.LimitOf(key)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(e.out).Encode(httpapi.LimitToJSON(l))
				}
				fmt.Fprintf(e.out, "%s: %s\n", key, limitString(l))
				return nil
			}},
	)
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
