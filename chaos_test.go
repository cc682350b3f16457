package rateltd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/queue"
)

// The chaos suite: several Clients under a steady mixed load (keys at a small limit, mixed
// priorities, callers that cancel, durable jobs) while a fault is injected — in the network
// (internal/faultproxy) or in Redis itself — and healed. Every scenario then checks what must
// hold whatever the fault: never over the limit (on Redis's grant times), exactly one outcome
// per request and by its deadline, every durable job run and its result delivered, the key's
// counters adding up, and the limit served again within a stated time after the heal.

const (
	chaosNodes   = 3
	chaosMax     = 50 // per chaosWindow, on every key
	chaosWindow  = time.Second
	chaosCallers = 20 // per key
	chaosHandler = "chaos"
)

var chaosKeys = []string{"ca", "cb"}

// chaosJobKey is the key of the durable jobs, at the same limit.
const chaosJobKey = "cj"

// grantLog records every grant some node took to run, in Redis server time, by key and ticket
// (or job) id; a grant given back (Refund) leaves it. Safe for concurrent use.
type grantLog struct {
	mu sync.Mutex
	// at holds the grants by key, then by id: µs of server time. Guarded by mu; written by
	// the recording backends of every node, read by the checks.
	at map[string]map[string]int64
}

func (l *grantLog) add(key string, id []byte, at int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil {
		l.at = map[string]map[string]int64{}
	}
	if l.at[key] == nil {
		l.at[key] = map[string]int64{}
	}
	l.at[key][string(id)] = at
}

func (l *grantLog) remove(key string, id []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.at[key], string(id))
}

// times returns key's grants, sorted.
func (l *grantLog) times(key string) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ts []int64
	for _, at := range l.at[key] {
		ts = append(ts, at)
	}
	slices.Sort(ts)
	return ts
}

// recBackend is a node's Redis backend that notes in a grantLog every grant the node takes:
// granted on arrival (Admit), granted to it by its own grant step (its tickets and durable
// jobs) or claimed after another node's, less those it gives back.
type recBackend struct {
	queue.Backend
	log *grantLog
}

func (b recBackend) Admit(ctx context.Context, p queue.Params, t *queue.Ticket, raw []byte) (queue.AdmitReply, error) {
	rep, err := b.Backend.Admit(ctx, p, t, raw)
	if err == nil && rep.Outcome == queue.Granted {
		b.log.add(t.Key, t.ID, rep.Now)
	}
	return rep, err
}

func (b recBackend) Grant(ctx context.Context, keys []string, ps []queue.Params, g queue.GrantArgs) ([]queue.GrantReply, []error) {
	reps, errs := b.Backend.Grant(ctx, keys, ps, g)
	for i, rep := range reps {
		if i < len(errs) && errs[i] != nil {
			continue
		}
		for _, raw := range rep.Local {
			if t, err := queue.DecodeTicket(raw); err == nil {
				b.log.add(keys[i], t.ID, rep.Now)
			}
		}
		for _, j := range rep.Jobs {
			b.log.add(keys[i], j.ID, rep.Now)
		}
	}
	return reps, errs
}

func (b recBackend) Claim(ctx context.Context, calls []queue.ClaimCall) []queue.ClaimResult {
	res := b.Backend.Claim(ctx, calls)
	for i, r := range res {
		if r.Err != nil {
			continue
		}
		for j, s := range r.Status {
			if s == queue.Claimed && j < len(r.At) {
				b.log.add(calls[i].Key, calls[i].Tickets[j].ID, r.At[j])
			}
		}
	}
	return res
}

func (b recBackend) Refund(ctx context.Context, key string, p queue.Params, id []byte, at int64, local []byte, cost int64) error {
	err := b.Backend.Refund(ctx, key, p, id, at, local, cost)
	if err == nil {
		b.log.remove(key, id)
	}
	return err
}

// Cancel takes out of the log a grant that a cancel gave back (one whose reply was lost, or
// whose caller left before it was delivered).
func (b recBackend) Cancel(ctx context.Context, p queue.Params, t *queue.Ticket, raw []byte) (queue.CancelOutcome, error) {
	out, err := b.Backend.Cancel(ctx, p, t, raw)
	if err == nil && out == queue.Refunded {
		b.log.remove(t.Key, t.ID)
	}
	return out, err
}

// chaosNode starts a Client on rdb whose grants go to log (if not nil), closed at the test's
// cleanup.
func chaosNode(t *testing.T, rdb redis.UniversalClient, prefix string, log *grantLog) *Client {
	t.Helper()
	// Results are kept a minute (not 24h), so that Redis's memory is flat under a steady load.
	cfg := Config{Redis: rdb, Prefix: prefix, PollInterval: 200 * time.Millisecond, LeaseTimeout: 2 * time.Second,
		ResultTTL: time.Minute,
		Default:   Limit{Max: chaosMax, Window: chaosWindow, QueueTimeout: 10 * time.Second}}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), newTimeout)
	defer cancel()
	r := queue.NewRedis(rdb, prefix, cfg.IndexShards)
	if err := r.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	var be queue.Backend = r
	if log != nil {
		be = recBackend{Backend: r, log: log}
	}
	c, err := newClient(ctx, cfg, be)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// outcome is how one request ended, as its caller saw it.
type outcome struct {
	key     string
	kind    string // see classify
	err     error
	late    time.Duration // how long after its deadline it ended; <= 0 when in time
	runs    int32         // how often its fn started
	patient bool          // its caller's deadline is seconds away
	short   bool          // its caller's deadline is shorter than a round trip
	begun   time.Time     // when it was made
	at      time.Time     // when it ended
}

// classify names an outcome: ok, fn-error, timeout, would-exceed, queue-full, evicted,
// closed, unavailable, cancelled, or other.
func classify(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errFn):
		return "fn-error"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrWouldExceedDeadline):
		return "would-exceed"
	case errors.Is(err, ErrQueueFull):
		return "queue-full"
	case errors.Is(err, ErrEvicted):
		return "evicted"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return "other"
}

var errFn = errors.New("chaos: fn failed")

// chaosLoad runs the steady mixed load on its nodes until stop.
type chaosLoad struct {
	t      *testing.T
	nodes  []*Client
	grants *grantLog
	// shortCallers adds, per key, callers whose ctx ends before Redis can answer.
	shortCallers int

	stop chan struct{}
	wg   sync.WaitGroup

	mu sync.Mutex
	// outcomes and jobs are appended by the load's goroutines, read once they are done.
	// Guarded by mu.
	outcomes []outcome
	jobs     []jobOutcome
	// runs counts the handler's runs that returned a result, by payload. Guarded by mu.
	runs map[string]int

	// tally, set before start, keeps counts instead of every outcome, for a long run
	// (TestSoak): kinds counts outcomes by kind, bad those that broke a rule of checkOutcomes
	// or of checkJobs. Guarded by mu.
	tally bool
	kinds map[string]int
	bad   map[string]int
}

type jobOutcome struct {
	payload, got string
	err          error
}

func newChaosLoad(t *testing.T, nodes []*Client, grants *grantLog) *chaosLoad {
	l := &chaosLoad{t: t, nodes: nodes, grants: grants, stop: make(chan struct{}), runs: map[string]int{},
		kinds: map[string]int{}, bad: map[string]int{}}
	for _, c := range nodes {
		if err := c.Handle(chaosHandler, l.handler); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *chaosLoad) handler(ctx context.Context, p []byte) ([]byte, error) {
	select {
	case <-time.After(10 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l.mu.Lock()
	if !l.tally {
		l.runs[string(p)]++
	}
	l.mu.Unlock()
	return append(p, "-done"...), nil
}

// start launches the callers and the job enqueuer.
func (l *chaosLoad) start() {
	for _, key := range chaosKeys {
		for i := range chaosCallers + l.shortCallers {
			l.wg.Add(1)
			go l.caller(key, i)
		}
	}
	l.wg.Add(1)
	go l.enqueuer()
}

// end stops the load and waits for every request and job Wait to end.
func (l *chaosLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

func (l *chaosLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// pace waits d, or less when the load stops.
func (l *chaosLoad) pace(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.stop:
	}
}

// caller i of key makes one request after another on node i%nodes. Of every 20: 2 Critical,
// 3 High, 10 Normal and 5 Low; every fifth cancels its request after 0-400ms; callers from
// chaosCallers on have a deadline shorter than a round trip. One fn in ten fails.
func (l *chaosLoad) caller(key string, i int) {
	defer l.wg.Done()
	c := l.nodes[i%len(l.nodes)]
	short := i >= chaosCallers
	prio := PriorityNormal
	switch j := i % chaosCallers; {
	case j < 2:
		prio = PriorityCritical
	case j < 5:
		prio = PriorityHigh
	case j >= 15:
		prio = PriorityLow
	}
	cancels := !short && i%5 == 4
	timeout := 5 * time.Second
	if prio == PriorityLow {
		timeout = 3 * time.Second
	}
	for n := 0; !l.stopped(); n++ {
		l.pace(time.Duration(150+rand.IntN(100)) * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if short {
			ctx, cancel = context.WithTimeout(context.Background(), time.Duration(200+rand.IntN(800))*time.Microsecond)
		}
		deadline, _ := ctx.Deadline()
		if cancels {
			time.AfterFunc(time.Duration(rand.IntN(400))*time.Millisecond, cancel)
		}
		begun := time.Now()
		var runs atomic.Int32
		fail := n%10 == 9
		_, err := c.Request(ctx, key, func(context.Context) (any, error) {
			runs.Add(1)
			if fail {
				return nil, errFn
			}
			return "v", nil
		})
		cancel()
		now := time.Now()
		o := outcome{key: key, kind: classify(err), err: err, late: now.Sub(deadline), runs: runs.Load(),
			patient: !short && !cancels && prio != PriorityLow, short: short, begun: begun, at: now}
		l.record(o)
	}
}

// record keeps o, or with tally set counts it.
func (l *chaosLoad) record(o outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.tally {
		l.outcomes = append(l.outcomes, o)
		return
	}
	l.kinds[o.kind]++
	ran := o.kind == "ok" || o.kind == "fn-error"
	switch {
	case o.kind == "other":
		l.bad["unknown error"]++
	case ran != (o.runs == 1), o.runs > 1:
		l.bad["fn runs"]++
	case !ran && o.late > lateSlack:
		l.bad["late"]++
	}
}

// enqueuer enqueues a durable job every 100ms, named so that retrying an Enqueue that failed
// queues nothing twice, and waits for each job's result on another node than the enqueuer.
func (l *chaosLoad) enqueuer() {
	defer l.wg.Done()
	for n := 0; !l.stopped(); n++ {
		l.pace(100 * time.Millisecond)
		payload := "job" + strconv.Itoa(n)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var id string
			var err error
			for id == "" && ctx.Err() == nil {
				// Retried after ErrUnavailable: the name makes the retry idempotent.
				if id, err = l.nodes[n%len(l.nodes)].Enqueue(ctx, chaosJobKey, chaosHandler, []byte(payload),
					WithJobName(payload), WithTimeout(20*time.Second)); err != nil && !errors.Is(err, ErrUnavailable) {
					break
				}
				if id == "" {
					l.pace(50 * time.Millisecond)
				}
			}
			var got []byte
			if id != "" {
				for {
					got, err = l.nodes[(n+1)%len(l.nodes)].Wait(ctx, id)
					if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
						break
					}
				}
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			switch {
			case !l.tally:
				l.jobs = append(l.jobs, jobOutcome{payload: payload, got: string(got), err: err})
			case err != nil || string(got) != payload+"-done":
				l.bad["job without its result"]++
			default:
				l.kinds["job"]++
			}
		}()
	}
}

// started counts, by key, the fns that started and the handler runs that returned a result.
func (l *chaosLoad) started() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := map[string]int64{}
	for _, o := range l.outcomes {
		n[o.key] += int64(o.runs)
	}
	for _, r := range l.runs {
		n[chaosJobKey] += int64(r)
	}
	return n
}

// summary sums up the outcomes by kind.
func (l *chaosLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	by := map[string]int{}
	for _, o := range l.outcomes {
		by[o.kind]++
	}
	return fmt.Sprintf("%d requests %v, %d jobs", len(l.outcomes), by, len(l.jobs))
}
