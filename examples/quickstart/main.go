// Quickstart: requests over a rate limit wait in line instead of failing.
//
//	go run ./examples/quickstart                                  # in-process, no Redis needed
//	REDIS_URL=redis://127.0.0.1:6379/0 go run ./examples/quickstart  # three clients share one key in Redis
//
// A key allows 5 requests per second. Fifteen requests arrive at once, some of high priority:
// five run at once, the others wait in line and run as the window frees, the high-priority
// ones first. A status line shows the window and the line as it drains. Then three durable
// jobs: enqueued by one client, run by another that registered their handler, their results
// read by a third (on Redis; in-process, one client does all three).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
)

const key = "demo-api"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg := rateltd.Config{
		Prefix: fmt.Sprintf("quickstart-%d", time.Now().UnixNano()), // a fresh line for each run
		Limits: map[string]rateltd.Limit{key: {Max: 5, Window: time.Second}},
	}
	nodes := 1
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			log.Fatalf("REDIS_URL: %v", err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		cfg.Redis = rdb
		nodes = 3 // three clients, as three replicas of a service would be
		fmt.Printf("backend: Redis at %s, %d clients sharing key %q (5 per second)\n", opt.Addr, nodes, key)
	} else {
		fmt.Printf("backend: in-process (set REDIS_URL to share the limit through Redis); key %q allows 5 per second\n", key)
	}

	clients := make([]*rateltd.Client, nodes)
	for i := range clients {
		c, err := rateltd.New(cfg)
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}

	start := time.Now()
	since := func() string { return fmt.Sprintf("%6.3fs", time.Since(start).Seconds()) }

	done := make(chan struct{})
	go func() { // the status line, four times a second
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				st, err := clients[0].Status(ctx, key)
				if err == nil {
					fmt.Printf("%s   status: used %d/%d, waiting %d (high %d, normal %d)\n", since(), st.Used, st.Limit.Max,
						st.Queued, st.QueuedByPriority[rateltd.PriorityHigh], st.QueuedByPriority[rateltd.PriorityNormal])
				}
			}
		}
	}()

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		starts []time.Time // when each fn started, to check the limit held
	)
	for i := 1; i <= 15; i++ {
		prio, label := rateltd.PriorityNormal, "normal"
		if i%4 == 0 {
			prio, label = rateltd.PriorityHigh, "high"
		}
		who := fmt.Sprintf("request %2d (%s)", i, label)
		if nodes > 1 {
			who += fmt.Sprintf(" on client %d", i%nodes+1)
		}
		client := clients[i%nodes]
		asked := time.Now()
		var ran sync.Once
		// A request whose fn has not started soon after it asked is waiting in line.
		queued := time.AfterFunc(20*time.Millisecond, func() {
			ran.Do(func() { fmt.Printf("%s   %s queued\n", since(), who) })
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := client.Request(ctx, key, func(ctx context.Context) (any, error) {
				ran.Do(func() {})
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				// Call the rate-limited API here.
				return fmt.Sprintf("result %d", i), nil
			}, rateltd.WithPriority(prio), rateltd.WithTimeout(10*time.Second))
			queued.Stop()
			switch waited := time.Since(asked); {
			case err != nil:
				fmt.Printf("%s   %s: %v\n", since(), who, err)
			case waited < 20*time.Millisecond:
				fmt.Printf("%s   %s admitted at once: %v\n", since(), who, v)
			default:
				fmt.Printf("%s   %s granted after waiting %.2fs in line: %v\n", since(), who, waited.Seconds(), v)
			}
		}()
		time.Sleep(2 * time.Millisecond) // arrivals in order, so first come first served shows
	}
	wg.Wait()
	close(done)
	st, err := clients[0].Status(ctx, key)
	if err != nil {
		log.Fatal(err)
	}
	c := st.Counters
	// The limit counts grants, in Redis's time; a grant made by another client's processor
	// reaches its caller a little later (a wake-up and a claim), so starts are compared
	// over the window less that handover.
	const handover = 50 * time.Millisecond
	fmt.Printf("%s   done: %d admitted at once, %d queued and granted; at most %d started in any %v (limit 5 per second)\n",
		since(), c.Admitted, c.Granted, busiest(starts, time.Second-handover), time.Second-handover)

	// Durable jobs: a handler name and bytes, kept in the backend until a client that runs the
	// handler has run them; any client can wait for the results.
	runner, enqueuer, waiter := clients[nodes-1], clients[0], clients[nodes/2]
	if err := runner.Handle("greet", func(ctx context.Context, payload []byte) ([]byte, error) {
		return []byte("hello, " + string(payload)), nil
	}); err != nil {
		log.Fatal(err)
	}
	var ids []string
	for _, name := range []string{"ada", "grace", "edsger"} {
		id, err := enqueuer.Enqueue(ctx, "demo-jobs", "greet", []byte(name), rateltd.WithMaxRetries(3))
		if err != nil {
			log.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		res, err := waiter.Wait(ctx, id)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s   durable job %s: %q\n", since(), id, res)
	}
}

// busiest is the largest number of starts within any interval of length d.
func busiest(starts []time.Time, d time.Duration) int {
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	most := 0
	for i := range starts {
		j := i
		for j < len(starts) && starts[j].Sub(starts[i]) < d {
			j++
		}
		most = max(most, j-i)
	}
	return most
}
