package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd"
)

// key is the rate-limit key of the API; every client calls it under this key.
const key = "llm"

// The API's limits, per minute.
const (
	requestsPerMinute = 60
	tokensPerMinute   = 2000
)

// setup is what one run does.
type setup struct {
	scale   float64               // the length of the API's minute, as a fraction of a minute
	calls   int                   // how many calls, in all
	callers int                   // how many goroutines of each client make calls
	seed    uint64                // the prompts' sizes and the answers' lengths follow from it
	slack   time.Duration         // what the limit's window adds to the API's; see slack
	settle  bool                  // whether calls settle what they used (Settle)
	rdb     redis.UniversalClient // the clients share it; nil: one client, in-process
	prefix  string                // the clients' Prefix; "" for a fresh one
	out     io.Writer             // a line per call, when verbose
	verbose bool
}

// report is what one run did.
type report struct {
	clients         int
	window          time.Duration // the API's minute, scaled
	calls, failed   int           // calls answered; calls that failed (any error)
	tooMany         int           // calls the API answered 429
	estimated, used int           // tokens: charged at the grants (WithCost), used (Settle)
	settled         int64         // grants settled, from the key's Status
	returned        int64         // tokens given back by settling lower, from the key's Status
	tooLarge        error         // what a prompt over what a minute admits got (ErrCostTooHigh)
	tooLargeRan     bool          // whether its fn ran (it must not)
	elapsed         time.Duration // from the first call to the end of the last
}

// ideal is the time the calls take at the API's rates: their tokens at tokensPerMinute, or
// the calls at requestsPerMinute, whichever is longer. A run may end up to a minute sooner,
// since the first minute's worth starts at once; it ends later when the head of the line
// waits for room for its whole estimate, which the calls behind it may not take (first come,
// first served).
func (r report) ideal() time.Duration {
	windows := max(float64(r.used)/tokensPerMinute, float64(r.calls)/requestsPerMinute)
	return time.Duration(windows * float64(r.window))
}

// limitFor is the key's limit for an API minute of length window: 60 requests and 2,000
// tokens a minute, as the API states them, over a window longer by slack.
func limitFor(window, slack time.Duration) rateltd.Limit {
	w := window + slack
	return rateltd.Limit{
		Max: requestsPerMinute, Window: w,
		Also:         []rateltd.Rate{{Max: tokensPerMinute, Window: w, Units: true}},
		QueueTimeout: 10 * window, // a caller may wait behind several minutes' worth of prompts
	}
}

// defaultSlack is what the limit's window adds to the API's: room for the time from a grant
// to the call's arrival at the API. The API counts a call when it arrives, rateltd when it grants
// it; so the API's window over a call ends that much later than rateltd's. With the same
// window on both sides, a call granted the moment an earlier one leaves rateltd's window can
// reach the API before the earlier one leaves the API's, if it got there faster: over the
// limit, 429. A window longer by the longest such delay rules that out: a second a minute,
// and at least 100ms, since the delay (a goroutine woken, a grant claimed from Redis, an HTTP
// connection opened) does not shrink with the scale.
func defaultSlack(window time.Duration) time.Duration { return max(window/60, 100*time.Millisecond) }

// runner is one run in progress.
type runner struct {
	setup
	api     *fakeLLM
	url     string       // the fake API's completions endpoint
	http    *http.Client // the fake API's client
	start   time.Time
	clients []*rateltd.Client

	mu  sync.Mutex // guards rep, written by every caller
	rep report
}

// scaled is the API's minute at scale.
func scaled(scale float64) time.Duration { return time.Duration(scale * float64(time.Minute)) }

// run makes s.calls calls to a fake LLM API through rateltd clients and reports what it did.
func run(ctx context.Context, s setup) (report, error) {
	window := scaled(s.scale)
	r := &runner{setup: s, api: &fakeLLM{
		window: window, maxRequests: requestsPerMinute, maxTokens: tokensPerMinute,
		perToken: time.Duration(s.scale * float64(10*time.Millisecond)), // 100 tokens a second at scale 1
		seed:     s.seed,
	}}
	srv := r.api.start()
	defer srv.Close()
	r.url, r.http = srv.URL+"/v1/completions", srv.Client()
	r.rep.window = window
	defer func() {
		for _, c := range r.clients {
			c.Close()
		}
	}()
	if err := r.connect(limitFor(window, s.slack)); err != nil {
		return report{}, err
	}
	r.start = time.Now()
	r.callAll(ctx, prompts(s.calls, s.seed))
	r.rep.elapsed = time.Since(r.start)
	r.rep.tooMany = r.api.tooMany()
	st, err := r.clients[0].Status(ctx, key)
	if err != nil {
		return report{}, err
	}
	r.rep.settled, r.rep.returned = st.Counters.Units.Settled, st.Counters.Units.Returned
	r.rep.tooLargeRan, r.rep.tooLarge = r.askTooMuch(ctx)
	return r.rep, nil
}

// connect makes the run's clients: three sharing s.rdb, as three replicas of a service would,
// or one in-process (an in-process backend is one process's).
func (r *runner) connect(limit rateltd.Limit) error {
	cfg := rateltd.Config{Redis: r.rdb, Prefix: r.prefix, Limits: map[string]rateltd.Limit{key: limit}}
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("llm-%d", time.Now().UnixNano()) // a fresh key for each run
	}
	n := 1
	if r.rdb != nil {
		n = 3
	}
	for range n {
		c, err := rateltd.New(cfg)
		if err != nil {
			return err
		}
		r.clients = append(r.clients, c)
	}
	r.rep.clients = n
	return nil
}

// callAll has s.callers goroutines of each client take the prompts in turn and call the API
// with each, until none is left.
func (r *runner) callAll(ctx context.Context, ps []prompt) {
	next := make(chan int, len(ps))
	for i := range ps {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for ci, c := range r.clients {
		for range r.callers {
			wg.Go(func() {
				for i := range next {
					r.call(ctx, ci+1, c, i+1, ps[i])
				}
			})
		}
	}
	wg.Wait()
}

// call makes call i of prompt p through client c: it waits in the key's line for the request
// rate and for p's estimate in tokens, calls the API, and settles the tokens the API says it
// used.
func (r *runner) call(ctx context.Context, client int, c *rateltd.Client, i int, p prompt) {
	est := p.estimate()
	res, err := rateltd.Do(ctx, c, key, func(ctx context.Context) (answer, error) {
		a, err := r.complete(ctx, p)
		if errors.As(err, new(*rateltd.RetryAfterError)) && r.settle {
			rateltd.Settle(ctx, 0) // the API counted nothing
		}
		if err != nil || !r.settle {
			return a, err
		}
		return a, rateltd.Settle(ctx, a.Usage.TotalTokens)
	}, rateltd.WithCost(est))
	r.mu.Lock()
	defer r.mu.Unlock()
	at := time.Since(r.start).Seconds()
	if err != nil {
		r.rep.failed++
		fmt.Fprintf(r.out, "%6.2fs  client %d  call %3d: %v\n", at, client, i, err)
		return
	}
	r.rep.calls++
	r.rep.estimated += est
	r.rep.used += res.Usage.TotalTokens
	if r.verbose {
		fmt.Fprintf(r.out, "%6.2fs  client %d  call %3d: estimated %3d tokens, used %3d; the API has %4d tokens and %2d requests left\n",
			at, client, i, est, res.Usage.TotalTokens, res.tokensLeft, res.requestsLeft)
	}
}

// answer is the API's answer to a call, with what its x-ratelimit-remaining-* headers said.
type answer struct {
	completionResponse
	tokensLeft, requestsLeft int
}

// complete calls the fake API with p. A 429 is a *rateltd.RetryAfterError: returned from fn,
// it pauses the key on every client until the API's Retry-After.
func (r *runner) complete(ctx context.Context, p prompt) (answer, error) {
	body, _ := json.Marshal(completionRequest{Prompt: p.text, MaxTokens: p.maxTokens})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	if err := rateltd.RetryAfterResponse(resp); err != nil {
		return answer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return answer{}, fmt.Errorf("API: %s", resp.Status)
	}
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a.completionResponse); err != nil {
		return answer{}, fmt.Errorf("API: %w", err)
	}
	a.tokensLeft, _ = strconv.Atoi(resp.Header.Get("x-ratelimit-remaining-tokens"))
	a.requestsLeft, _ = strconv.Atoi(resp.Header.Get("x-ratelimit-remaining-requests"))
	return a, nil
}

// askTooMuch asks for a prompt whose estimate no minute of the API could ever admit: it
// fails at once with ErrCostTooHigh, and its fn does not run.
func (r *runner) askTooMuch(ctx context.Context) (ran bool, err error) {
	_, err = r.clients[0].Request(ctx, key, func(ctx context.Context) (any, error) {
		ran = true
		return nil, nil
	}, rateltd.WithCost(tokensPerMinute+100))
	return ran, err
}
