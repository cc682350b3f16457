// LLM: an API that states its limits in requests and tokens a minute, called within both.
//
//	go run ./examples/llm                                  # in-process, no Redis needed
//	REDIS_URL=redis://127.0.0.1:6379/0 go run ./examples/llm  # three clients share the limit in Redis
//	go run ./examples/llm -scale 1                         # the real minute (slow)
//
// A fake LLM API, served on a local port, allows 60 requests and 2,000 tokens a minute, in a
// sliding minute, counting the tokens each call really used (prompt and answer) when the call
// arrives; past either it answers 429. It reports each call's usage in its body
// (usage.total_tokens) and what is left in x-ratelimit-remaining-* headers.
//
// The callers know a prompt's tokens but not the answer's length: they ask for at most
// max_tokens, so a call uses at most its prompt's tokens plus max_tokens. Each call is made
// with that estimate as its cost on a key limited as the API states it,
//
//	rateltd.Limit{Max: 60, Window: time.Minute + time.Second,
//		Also: []rateltd.Rate{{Max: 2000, Window: time.Minute + time.Second, Units: true}}}
//
// (the second is slack for a call's way from its grant to the API, see defaultSlack; -slack 0
// shows the 429s it prevents), and settles, once the API answered, what the API says it used:
// the difference goes back to the window as of the grant, so later calls start as soon as
// the API's own count allows (-settle=false keeps the estimates charged: slower).
//
// With REDIS_URL, three clients (three replicas of a service) share the key; without it, one
// client, in-process (an in-process backend limits one Client). At the end: calls made, 429s
// seen (none), tokens estimated and used, the time taken against the ideal (the tokens at
// 2,000 a minute or the calls at 60, the longer), and a prompt too large for any minute,
// refused at once with ErrCostTooHigh.
//
// A minute is long for a demo: -scale shrinks it on both sides, the API's and the limit's
// (0.1, the default, makes it 6 seconds; the run takes about 25 seconds).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
)

func main() {
	s := setup{out: os.Stdout}
	flag.Float64Var(&s.scale, "scale", 0.1, "the length of the API's minute, as a fraction of a minute, on both sides")
	flag.IntVar(&s.calls, "calls", 60, "how many calls to make")
	flag.IntVar(&s.callers, "callers", 4, "goroutines making calls, per client")
	flag.Uint64Var(&s.seed, "seed", 1, "seed of the prompts' sizes and the answers' lengths")
	flag.DurationVar(&s.slack, "slack", -1, "what the key's window adds to the API's (default: a 60th of it, at least 100ms)")
	flag.BoolVar(&s.settle, "settle", true, "settle each call's tokens (false: keep the estimates charged)")
	flag.BoolVar(&s.verbose, "v", true, "print a line per call")
	flag.Parse()
	if s.scale <= 0 || s.scale > 10 || s.calls < 1 || s.callers < 1 {
		log.Fatal("want 0 < -scale <= 10, -calls >= 1, -callers >= 1")
	}
	if s.slack < 0 {
		s.slack = defaultSlack(scaled(s.scale))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	backend := "in-process, 1 client (set REDIS_URL to share the limit through Redis among 3 clients)"
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			log.Fatalf("REDIS_URL: %v", err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		s.rdb = rdb
		backend = fmt.Sprintf("Redis at %s, 3 clients sharing the key", opt.Addr)
	}
	fmt.Printf("backend: %s; %d callers each\n", backend, s.callers)
	fmt.Printf("the API allows %d requests and %d tokens per %v (a minute at -scale %g), and answers 429 past either\n",
		requestsPerMinute, tokensPerMinute, scaled(s.scale), s.scale)
	fmt.Printf("the key's limit: the same over %v (%v of slack for a call's way to the API)\n",
		scaled(s.scale)+s.slack, s.slack)
	rep, err := run(ctx, s)
	if err != nil {
		log.Fatal(err)
	}
	summarise(rep)
	if rep.tooMany > 0 || rep.failed > 0 || !errors.Is(rep.tooLarge, rateltd.ErrCostTooHigh) || rep.tooLargeRan {
		os.Exit(1)
	}
}

// summarise prints what the run did.
func summarise(r report) {
	fmt.Printf("calls: %d answered, %d failed; 429s from the API: %d\n", r.calls, r.failed, r.tooMany)
	fmt.Printf("tokens: %d estimated (charged at the grants), %d used (%d calls settled, giving back %d)\n",
		r.estimated, r.used, r.settled, r.returned)
	fmt.Printf("time: %.1fs; ideal %.1fs (%d tokens at %d per %v, or %d calls at %d per %v: the longer)\n",
		r.elapsed.Seconds(), r.ideal().Seconds(), r.used, tokensPerMinute, r.window, r.calls, requestsPerMinute, r.window)
	fmt.Printf("a prompt of up to %d tokens: %v\n", tokensPerMinute+100, r.tooLarge)
}
