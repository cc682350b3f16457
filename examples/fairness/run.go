package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
)

// The tenants.
const (
	noisy = "acct_noisy"
	quiet = "acct_quiet"
)

// setup is the traffic of one run.
type setup struct {
	rate   int                   // the key's starts per second, one at a time
	noisy  int                   // acct_noisy's requests, all at once
	bursts int                   // acct_quiet's bursts, the first one interval after the flood
	burst  int                   // acct_quiet's requests per burst
	every  time.Duration         // between acct_quiet's bursts
	rdb    redis.UniversalClient // two clients share it; nil: one client, in-process
	prefix string                // the clients' Prefix; "" for a fresh one
}

// defaultSetup is the demo's traffic: the flood takes 3s to drain; acct_quiet's bursts come
// while it does.
var defaultSetup = setup{rate: 50, noisy: 150, bursts: 4, burst: 8, every: 400 * time.Millisecond}

// mode is one way of serving the same traffic, on a key of its own.
type mode struct {
	name    string
	key     string
	tenants bool // whether the requests say their tenant (WithTenant)
	weight  int  // acct_quiet's weight (Limit.TenantWeights); 0 or 1: as any tenant's
}

var modes = []mode{
	{name: "first come first served", key: "api-fifo"},
	{name: "fair shares", key: "api-fair", tenants: true},
	{name: "fair, acct_quiet weight 3", key: "api-weighted", tenants: true, weight: 3},
}

// limitFor is the limit of mode m's key: rate starts a second, one at a time, and in a
// weighted mode acct_quiet's weight.
func limitFor(m mode, rate int) rateltd.Limit {
	l := rateltd.Limit{Algorithm: rateltd.TokenBucket, Max: rate, Window: time.Second, Burst: 1,
		MaxQueue: 5000, QueueTimeout: time.Minute}
	if m.weight > 1 {
		l.TenantWeights = map[string]int{quiet: m.weight}
	}
	return l
}

// waits sums up one tenant's waits in one mode.
type waits struct{ p50, max time.Duration }

// result is what one mode did.
type result struct {
	mode         mode
	noisy, quiet waits
	// overtaken is the most of acct_noisy's requests that started while one of acct_quiet's
	// waited (sent before it started, after it was sent).
	overtaken int
}

// call is one request: whose, when it was made and when its fn started.
type call struct {
	tenant        string
	sent, started time.Time
}

// run serves the traffic of s in each mode in turn.
func run(ctx context.Context, s setup) ([]result, error) {
	clients, err := connect(s)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	var results []result
	for _, m := range modes {
		calls, err := s.serve(ctx, m, clients[0], clients[len(clients)-1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		results = append(results, summarise(m, calls))
	}
	return results, nil
}

// connect makes the clients: one in-process, or two sharing s.rdb.
func connect(s setup) ([]*rateltd.Client, error) {
	cfg := rateltd.Config{Redis: s.rdb, Prefix: s.prefix, Limits: map[string]rateltd.Limit{}}
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("fairness-%d", time.Now().UnixNano()) // fresh lines for each run
	}
	for _, m := range modes {
		cfg.Limits[m.key] = limitFor(m, s.rate)
	}
	n := 1
	if s.rdb != nil {
		n = 2
	}
	var clients []*rateltd.Client
	for range n {
		c, err := rateltd.New(cfg)
		if err != nil {
			for _, c := range clients {
				c.Close()
			}
			return nil, err
		}
		clients = append(clients, c)
	}
	return clients, nil
}

// serve sends the traffic of s on mode m's key, acct_noisy's through cn and acct_quiet's
// through cq, and returns every call once all have run.
func (s setup) serve(ctx context.Context, m mode, cn, cq *rateltd.Client) ([]call, error) {
	var (
		mu    sync.Mutex // guards calls and errs, written by every request's goroutine
		calls []call
		errs  []error
		wg    sync.WaitGroup
	)
	send := func(c *rateltd.Client, tenant string) {
		defer wg.Done()
		var opts []rateltd.Option
		if m.tenants {
			opts = append(opts, rateltd.WithTenant(tenant))
		}
		cl := call{tenant: tenant, sent: time.Now()}
		_, err := c.Request(ctx, m.key, func(context.Context) (any, error) {
			cl.started = time.Now()
			return nil, nil
		}, opts...)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tenant, err))
			return
		}
		calls = append(calls, cl)
	}
	start := time.Now()
	for range s.noisy {
		wg.Add(1)
		go send(cn, noisy)
	}
	for i := range s.bursts {
		select {
		case <-time.After(time.Until(start.Add(time.Duration(i+1) * s.every))):
		case <-ctx.Done():
		}
		for range s.burst {
			wg.Add(1)
			go send(cq, quiet)
		}
	}
	wg.Wait()
	return calls, errors.Join(errs...)
}

// summarise sums up one mode's calls.
func summarise(m mode, calls []call) result {
	r := result{mode: m}
	byTenant := map[string][]time.Duration{}
	for _, c := range calls {
		byTenant[c.tenant] = append(byTenant[c.tenant], c.started.Sub(c.sent))
		if c.tenant != quiet {
			continue
		}
		n := 0
		for _, o := range calls {
			if o.tenant == noisy && o.started.After(c.sent) && o.started.Before(c.started) {
				n++
			}
		}
		r.overtaken = max(r.overtaken, n)
	}
	r.noisy, r.quiet = summariseWaits(byTenant[noisy]), summariseWaits(byTenant[quiet])
	return r
}

// summariseWaits is the median (the upper one of an even count) and the longest of ds, to the
// millisecond.
func summariseWaits(ds []time.Duration) waits {
	if len(ds) == 0 {
		return waits{}
	}
	slices.Sort(ds)
	return waits{p50: ds[len(ds)/2].Round(time.Millisecond), max: ds[len(ds)-1].Round(time.Millisecond)}
}
