// Fairness: one tenant floods a shared key, and another is still served in turn.
//
//	go run ./examples/fairness                                  # in-process, no Redis needed
//	REDIS_URL=redis://127.0.0.1:6379/0 go run ./examples/fairness  # two clients share the key in Redis
//
// A key starts 50 requests a second, one every 20ms (a token bucket of burst 1). Tenant
// acct_noisy sends 150 requests at once; tenant acct_quiet sends 32, in bursts of 8 every
// 400ms from 0.4s, while the flood waits. The same traffic runs three times, on a key each:
//
//   - first come first served: the requests say no tenant, and acct_quiet's wait behind
//     whatever of the flood came before them;
//   - fair shares: each request says its tenant (rateltd.WithTenant); while both have
//     requests waiting they take turns, so acct_quiet's wait for one of acct_noisy's per
//     request ahead of them in their own burst, not for the flood;
//   - weighted: the same, with acct_quiet at weight 3 (Limit.TenantWeights): three of its
//     requests start to each of acct_noisy's while both wait.
//
// For each, it prints each tenant's waits, from the call to fn's start (p50 and max), and the
// most of acct_noisy's requests that started while one of acct_quiet's waited. The line moves
// at the key's pace in every mode, and drains as soon: fair shares change its order only, so
// the flood's waits grow by the turns acct_quiet takes.
//
// With REDIS_URL, two clients (two replicas of a service) share the key, one serving each
// tenant; without it, one client, in-process.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"

	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	s := defaultSetup
	backend := "in-process, 1 client (set REDIS_URL to share the key through Redis between 2 clients)"
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			log.Fatalf("REDIS_URL: %v", err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		s.rdb = rdb
		backend = fmt.Sprintf("Redis at %s, 2 clients sharing the key, one serving each tenant", opt.Addr)
	}
	fmt.Printf("backend: %s\n", backend)
	fmt.Printf("the key starts %d requests a second; %s sends %d at once, %s %d in bursts of %d every %v\n\n",
		s.rate, noisy, s.noisy, quiet, s.bursts*s.burst, s.burst, s.every)
	results, err := run(ctx, s)
	if err != nil {
		log.Fatal(err)
	}
	table(os.Stdout, results)
}

// table prints each mode's waits.
func table(w io.Writer, results []result) {
	fmt.Fprintf(w, "%-28s %-21s %-21s %s\n", "", noisy+" waits", quiet+" waits", quiet+" overtaken")
	fmt.Fprintf(w, "%-28s %-10s %-10s %-10s %-10s %s\n", "", "p50", "max", "p50", "max", "(most)")
	for _, r := range results {
		fmt.Fprintf(w, "%-28s %-10v %-10v %-10v %-10v %d\n", r.mode.name,
			r.noisy.p50, r.noisy.max, r.quiet.p50, r.quiet.max, r.overtaken)
	}
	fmt.Fprintf(w, "\novertaken: the most of %s's requests that started while one of %s's waited\n", noisy, quiet)
}
