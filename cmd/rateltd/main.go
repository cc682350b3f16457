// Command rateltd inspects and steers rateltd's keys, serves its HTTP API and dashboard, and
// runs a demo.
//
//	rateltd [global flags] <command> [flags] [args]
//
//	status [KEY...]     a table per key (all keys with state when none is named); --json
//	watch [KEY...]      the same, refreshing in place until Ctrl-C
//	pause NAME          pause a key, a group, or "*" (everything)
//	resume NAME         end that pause
//	reset KEY           clear a key's window, line and counters
//	limit get KEY       the limit in force for KEY
//	limit set KEY --max N --window D [--algorithm sliding|fixed|token] [--burst N]
//	              [--units] [--also MAX/WINDOW[/units][/burst=N]]...   (up to 4 --also)
//	              [--concurrency N]   (alone: a cap with no rate, limit set KEY --concurrency N)
//	              [--shadow]   (watched, not enforced: every request runs at once)
//	limit unset KEY     remove the limit set at run time
//	serve               the HTTP API, metrics and dashboard
//	demo                simulated callers on a few keys, with serve running
//	bench               the fast path, the queued path and durable jobs measured on a Redis
//
// Global flags (also accepted after the command): --redis URL (default $REDIS_URL, else
// redis://127.0.0.1:6379/0), --cluster host:port,..., --prefix (default rateltd), --config FILE.
// Every command has --help. Bad input exits 2 with a one-line reason; a failure exits 1.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/cmd/rateltd/internal/configfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is bad input: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// globals are the flags every command takes.
type globals struct {
	redisURL, cluster, prefix, configFile string
	redisSet                              bool // --redis or --cluster given explicitly
}

func (g *globals) register(fs *flag.FlagSet) {
	def := os.Getenv("REDIS_URL")
	if def == "" {
		def = "redis://127.0.0.1:6379/0"
	}
	fs.Func("redis", "Redis URL (default $REDIS_URL, else redis://127.0.0.1:6379/0)", func(s string) error {
		g.redisURL, g.redisSet = s, true
		return nil
	})
	fs.Func("cluster", "Redis Cluster addresses, host:port,...", func(s string) error {
		g.cluster, g.redisSet = s, true
		return nil
	})
	// Registered twice (before and after the command): what the first parse set stays.
	fs.StringVar(&g.prefix, "prefix", cmp.Or(g.prefix, "rateltd"), "prefix of rateltd's Redis keys")
	fs.StringVar(&g.configFile, "config", g.configFile, "configuration file (YAML): limits, defaults, admin and client tokens")
	if g.redisURL == "" {
		g.redisURL = def
	}
}

// command is one subcommand.
type command struct {
	name, args, help string
	flags            func(fs *flag.FlagSet) // the command's own flags
	run              func(ctx context.Context, e *env, args []string) error
}

// env is what a command runs with.
type env struct {
	g        *globals
	out, err io.Writer
}

var commands []*command // filled by init functions of the command files

// commandOrder is the order of the commands in the usage.
var commandOrder = []string{"status", "watch", "pause", "resume", "reset", "limit", "dead", "jobs", "serve", "demo", "bench"}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{}
	top := flag.NewFlagSet("rateltd", flag.ContinueOnError)
	// The flag package prints nothing (output discarded, Usage a no-op): help is printed below,
	// once, on stdout; an error as one line on stderr.
	top.SetOutput(io.Discard)
	top.Usage = func() {}
	g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		return fail(stderr, usageError{err.Error()})
	}
	args = top.Args()
	if len(args) == 0 {
		return fail(stderr, usagef("no command given; try rateltd --help"))
	}
	if args[0] == "help" {
		usage(stdout)
		return 0
	}
	var cmd *command
	for _, c := range commands {
		if c.name == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		return fail(stderr, usagef("unknown command %q; try rateltd --help", args[0]))
	}
	e := &env{g: g, out: stdout, err: stderr}
	fs := flag.NewFlagSet("rateltd "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(stdout, cmd, fs)
			return 0
		}
		return fail(stderr, usageError{err.Error()})
	}
	pos, err := interleaved(fs)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(stdout, cmd, fs)
			return 0
		}
		return fail(stderr, usageError{err.Error()})
	}
	if err := cmd.run(ctx, e, pos); err != nil {
		return fail(stderr, err)
	}
	return 0
}

// interleaved parses flags that follow positional arguments too ("status k --json").
func interleaved(fs *flag.FlagSet) ([]string, error) {
	var pos []string
	rest := fs.Args()
	for len(rest) > 0 {
		if strings.HasPrefix(rest[0], "-") && rest[0] != "-" {
			if err := fs.Parse(rest); err != nil {
				return nil, err
			}
			rest = fs.Args()
			continue
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	return pos, nil
}

func fail(w io.Writer, err error) int {
	fmt.Fprintf(w, "rateltd: %s\n", strings.TrimPrefix(oneLine(err.Error()), "rateltd: "))
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: rateltd [--redis URL | --cluster host:port,...] [--prefix P] [--config FILE] <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	for _, name := range commandOrder {
		for _, c := range commands {
			if c.name == name {
				first, _, _ := strings.Cut(c.help, "\n")
				fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(c.name+" "+c.args), first)
			}
		}
	}
	fmt.Fprintln(w, "\nrateltd <command> --help shows a command's flags.")
}

func commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: rateltd %s [flags] %s\n\n%s\n\nflags:\n", c.name, c.args, c.help)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// fileConfig reads --config when given.
func (e *env) fileConfig() (configfile.File, error) {
	if e.g.configFile == "" {
		return configfile.File{}, nil
	}
	f, err := configfile.Load(e.g.configFile)
	if err != nil {
		return f, usageError{err.Error()}
	}
	return f, nil
}

// redisClient connects to the Redis the flags (or the file) name; nil for in-process when
// inProcess allows it and nothing names a Redis.
func (e *env) redisClient(f configfile.File, inProcess bool) (redis.UniversalClient, error) {
	g := e.g
	switch {
	case g.cluster != "":
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(g.cluster, ",")}), nil
	case g.redisSet:
	case len(f.Cluster) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: f.Cluster}), nil
	case f.RedisURL != "":
		g.redisURL = f.RedisURL
	case inProcess && os.Getenv("REDIS_URL") == "":
		return nil, nil
	}
	opt, err := redis.ParseURL(g.redisURL)
	if err != nil {
		return nil, usagef("--redis %q: %v", g.redisURL, err)
	}
	return redis.NewClient(opt), nil
}

// client opens a rateltd Client on the configured backend. Close it with the func returned.
func (e *env) client(ctx context.Context, inProcess bool, observer rateltd.Observer) (*rateltd.Client, func(), error) {
	return e.clientWith(ctx, inProcess, observer, nil)
}

// clientWith is client with limits added to those of the file (the file's win).
func (e *env) clientWith(ctx context.Context, inProcess bool, observer rateltd.Observer, limits map[string]rateltd.Limit) (*rateltd.Client, func(), error) {
	f, err := e.fileConfig()
	if err != nil {
		return nil, nil, err
	}
	rdb, err := e.redisClient(f, inProcess)
	if err != nil {
		return nil, nil, err
	}
	cfg := f.Config
	cfg.Redis, cfg.Observer = rdb, observer
	for k, l := range limits {
		if _, ok := cfg.Limits[k]; !ok {
			if cfg.Limits == nil {
				cfg.Limits = map[string]rateltd.Limit{}
			}
			cfg.Limits[k] = l
		}
	}
	if cfg.Prefix == "" || e.g.prefix != "rateltd" {
		cfg.Prefix = e.g.prefix
	}
	c, err := rateltd.New(cfg)
	if err != nil {
		if rdb != nil {
			rdb.Close()
		}
		return nil, nil, err
	}
	closeAll := func() {
		c.Close()
		if rdb != nil {
			rdb.Close()
		}
	}
	return c, closeAll, nil
}
