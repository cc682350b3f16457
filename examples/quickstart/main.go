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

	clients, closeAll := connect()
	defer closeAll()
	d := &demo{clients: clients, start: time.Now()}
	d.requests(ctx)
	d.jobs(ctx)
}

// connect makes the demo's clients: one in-process, or three sharing Redis at REDIS_URL, as
// three replicas of a service would. closeAll closes them (and the Redis client).
func connect() (clients []*rateltd.Client, closeAll func()) {
	cfg := rateltd.Config{
		Prefix: fmt.Sprintf("quickstart-%d", time.Now().UnixNano()), // a fresh line for each run
		Limits: map[string]rateltd.Limit{key: {Max: 5, Window: time.Second}},
	}
	nodes := 1
	var rdb *redis.Client
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			log.Fatalf("REDIS_URL: %v", err)
		}
		rdb = redis.NewClient(opt)
		cfg.Redis = rdb
		nodes = 3
		fmt.Printf("backend: Redis at %s, %d clients sharing key %q (5 per second)\n", opt.Addr, nodes, key)
	} else {
		fmt.Printf("backend: in-process (set REDIS_URL to share the limit through Redis); key %q allows 5 per second\n", key)
	}
	for range nodes {
		c, err := rateltd.New(cfg)
		if err != nil {
			log.Fatal(err)
		}
		clients = append(clients, c)
	}
	return clients, func() {
		for _, c := range clients {
			c.Close()
		}
		if rdb != nil {
			rdb.Close()
		}
	}
}

// demo is one run of the demo: its clients, and when it started (for the time stamps).
type demo struct {
	clients []*rateltd.Client
	start   time.Time
}

func (d *demo) since() string { return fmt.Sprintf("%6.3fs", time.Since(d.start).Seconds()) }

// requests sends fifteen requests at once, every fourth of high priority, spread over the
// clients, while a status line shows the window and the line; then it says how many started
// in the busiest second.
func (d *demo) requests(ctx context.Context) {
	done := make(chan struct{})
	go d.statusLines(ctx, done)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		starts []time.Time // when each fn started, to check the limit held
	)
	for i := 1; i <= 15; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.request(ctx, i, func() {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
			})
		}()
		time.Sleep(2 * time.Millisecond) // arrivals in order, so first come first served shows
	}
	wg.Wait()
	close(done)
	st, err := d.clients[0].Status(ctx, key)
	if err != nil {
		log.Fatal(err)
	}
	c := st.Counters
	// The limit counts grants, in Redis's time; a grant made by another client's processor
	// reaches its caller a little later (a wake-up and a claim), so starts are compared
	// over the window less that handover.
	const handover = 50 * time.Millisecond
	fmt.Printf("%s   done: %d admitted at once, %d queued and granted; at most %d started in any %v (limit 5 per second)\n",
		d.since(), c.Admitted, c.Granted, busiest(starts, time.Second-handover), time.Second-handover)
}

// request sends request i and says how it went: admitted at once, or queued and granted
// later. started is called when its fn starts.
func (d *demo) request(ctx context.Context, i int, started func()) {
	prio, label := rateltd.PriorityNormal, "normal"
	if i%4 == 0 {
		prio, label = rateltd.PriorityHigh, "high"
	}
	who := fmt.Sprintf("request %2d (%s)", i, label)
	if len(d.clients) > 1 {
		who += fmt.Sprintf(" on client %d", i%len(d.clients)+1)
	}
	asked := time.Now()
	var ran sync.Once
	// A request whose fn has not started soon after it asked is waiting in line.
	queued := time.AfterFunc(20*time.Millisecond, func() {
		ran.Do(func() { fmt.Printf("%s   %s queued\n", d.since(), who) })
	})
	v, err := d.clients[i%len(d.clients)].Request(ctx, key, func(ctx context.Context) (any, error) {
		ran.Do(func() {})
		started()
		// Call the rate-limited API here.
		return fmt.Sprintf("result %d", i), nil
	}, rateltd.WithPriority(prio), rateltd.WithTimeout(10*time.Second))
	queued.Stop()
	switch waited := time.Since(asked); {
	case err != nil:
		fmt.Printf("%s   %s: %v\n", d.since(), who, err)
	case waited < 20*time.Millisecond:
		fmt.Printf("%s   %s admitted at once: %v\n", d.since(), who, v)
	default:
		fmt.Printf("%s   %s granted after waiting %.2fs in line: %v\n", d.since(), who, waited.Seconds(), v)
	}
}

// statusLines prints the key's status four times a second until done is closed.
func (d *demo) statusLines(ctx context.Context, done <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			st, err := d.clients[0].Status(ctx, key)
			if err == nil {
				fmt.Printf("%s   status: used %d/%d, waiting %d (high %d, normal %d)\n", d.since(), st.Used, st.Limit.Max,
					st.Queued, st.QueuedByPriority[rateltd.PriorityHigh], st.QueuedByPriority[rateltd.PriorityNormal])
			}
		}
	}
}

// jobs runs three durable jobs: a handler name and bytes, kept in the backend until a client
// that runs the handler has run them. One client enqueues them, another runs them, a third
// waits for the results (on Redis; in-process, one client does all three).
func (d *demo) jobs(ctx context.Context) {
	n := len(d.clients)
	runner, enqueuer, waiter := d.clients[n-1], d.clients[0], d.clients[n/2]
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
		fmt.Printf("%s   durable job %s: %q\n", d.since(), id, res)
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
