package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rateltd/rateltd"
	"github.com/rateltd/rateltd/httpapi"
	"github.com/rateltd/rateltd/metrics"
)

func init() {
	var addr string
	var t tokens
	serveFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on")
		// The variables are read when the command runs, not as the flags' defaults: --help
		// would print them.
		fs.StringVar(&t.admin, "admin-token", "",
			"bearer token the admin routes (pause, resume, reset, limit set) require (default $RATELTD_ADMIN_TOKEN, else admin_token: in --config)")
		fs.StringVar(&t.client, "client-token", "",
			"bearer token /v1/acquire, /v1/jobs and the dashboard's feed require; the admin token serves too, and without one\n"+
				"the admin routes take this one (default $RATELTD_CLIENT_TOKEN, else client_token: in --config; none: those routes are open)")
	}
	commands = append(commands,
		&command{name: "serve", args: "",
			help:  "Serve the HTTP API, /metrics and the dashboard (at /) until Ctrl-C.",
			flags: serveFlags,
			run: func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("serve takes no arguments, got %q", args)
				}
				return serve(ctx, e, addr, t.orEnv(), false, nil)
			}},
		&command{name: "demo", args: "",
			help: "Simulated callers on a few keys, with serve running: watch lines fill and drain at /.\n" +
				"In-process unless --redis, --cluster or $REDIS_URL names a Redis.",
			flags: serveFlags,
			run: func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("demo takes no arguments, got %q", args)
				}
				return serve(ctx, e, addr, t.orEnv(), true, nil)
			}},
	)
}

// tokens are the bearer tokens of the service: see httpapi.Options.
type tokens struct{ admin, client string }

// orEnv fills in the tokens not given from $RATELTD_ADMIN_TOKEN and $RATELTD_CLIENT_TOKEN.
func (t tokens) orEnv() tokens {
	return tokens{admin: cmp.Or(t.admin, os.Getenv("RATELTD_ADMIN_TOKEN")), client: cmp.Or(t.client, os.Getenv("RATELTD_CLIENT_TOKEN"))}
}

// serve runs the service until ctx ends; with demo, simulated callers too. ready, when not
// nil, receives the address once listening (for tests).
func serve(ctx context.Context, e *env, addr string, t tokens, demo bool, ready chan<- string) error {
	m := metrics.New(metrics.Options{})
	f, err := e.fileConfig()
	if err != nil {
		return err
	}
	t.admin = cmp.Or(t.admin, f.AdminToken)
	t.client = cmp.Or(t.client, f.ClientToken)
	c, closeAll, err := e.clientWith(ctx, demo, m, demoLimits(demo))
	if err != nil {
		return err
	}
	defer closeAll()
	m.Watch(c)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	api := httpapi.NewHandler(c, httpapi.Options{AdminToken: t.admin, ClientToken: t.client, Gatherer: reg})
	api.Dashboard(time.Second)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return usagef("--addr %s: %v", addr, err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(e.out, "rateltd: serving http://%s/ (API /v1, metrics /metrics)\n", ln.Addr())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	var wg sync.WaitGroup
	if demo {
		fmt.Fprintln(e.out, "rateltd: demo: simulated callers on openai (requests and tokens), stripe:acct_1, stripe:acct_2, github; Ctrl-C to stop")
		runDemo(ctx, c, &wg)
	}
	select {
	case <-ctx.Done():
	case err := <-done:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	wg.Wait()
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// demoLimits are the demo's keys: small limits so that lines form and drain within seconds.
// openai has two rates, requests and tokens (cost units), as an LLM API does.
func demoLimits(demo bool) map[string]rateltd.Limit {
	if !demo {
		return nil
	}
	return map[string]rateltd.Limit{
		"openai": {Max: 5, Window: time.Second, QueueTimeout: 20 * time.Second,
			Also: []rateltd.Rate{{Max: 1500, Window: time.Second, Units: true}}},
		"stripe": {Algorithm: rateltd.TokenBucket, Max: 3, Window: time.Second, Burst: 3, QueueTimeout: 20 * time.Second},
		"github": {Algorithm: rateltd.FixedWindow, Max: 10, Window: 2 * time.Second, QueueTimeout: 20 * time.Second},
	}
}

// runDemo starts callers that come in waves, so that lines fill, then drain.
func runDemo(ctx context.Context, c *rateltd.Client, wg *sync.WaitGroup) {
	keys := []string{"openai", "stripe:acct_1", "stripe:acct_2", "github"}
	prios := []rateltd.Priority{rateltd.PriorityLow, rateltd.PriorityNormal, rateltd.PriorityNormal, rateltd.PriorityHigh}
	for i, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wave := 0; ctx.Err() == nil; wave++ {
				n := 8 + rand.IntN(12) // a burst larger than the limit
				for range n {
					if ctx.Err() != nil {
						return
					}
					// openai's calls cost tokens: estimated before, settled after.
					cost := 1
					if key == "openai" {
						cost = 100 + rand.IntN(400)
					}
					ch := c.RequestAsync(ctx, key, func(ctx context.Context) (any, error) {
						time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond) // the upstream call
						if key == "openai" {
							_ = rateltd.Settle(ctx, cost/2+rand.IntN(cost))
						}
						return nil, nil
					}, rateltd.WithPriority(prios[rand.IntN(len(prios))]), rateltd.WithCost(cost))
					go func() { <-ch }()
					time.Sleep(time.Duration(50+rand.IntN(100*(i+1))) * time.Millisecond)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(2+rand.IntN(4)) * time.Second): // a lull: the line drains
				}
			}
		}()
	}
}
