// Package processor is the engine behind package rateltd; it makes no stability promise and
// exports only what the module uses. Its one job is to run a node: it registers the node's
// waiting requests, admits them through the backend, and runs the node's one processor
// goroutine, which grants waiting tickets as slots free, delivers grants to local waiters,
// wakes the owners of others, and runs durable jobs under their leases.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/internal/track"
	"github.com/rateltd/rateltd/queue"
)

// Node is one Client's presence in the cluster: an id, the requests it waits for, its view of
// the runtime configuration and its processor goroutine. Safe for concurrent use.
type Node struct {
	id  []byte
	be  queue.Backend
	cfg Options
	log *logLimiter

	// offset is server time minus local time, µs: the largest of the readings of the last
	// offsetMemory (observe), taken at offsetAt (local µs). Written by every backend reply
	// that carries server time, read whenever a local time is turned into server time.
	offset, offsetAt atomic.Int64

	mu sync.Mutex
	// waiters holds this node's waiting requests by key and ticket id. Written by Acquire
	// (add, remove) and by the loop and Stop (mark done); read by all three. Guarded by mu.
	waiters map[string]map[ticketID]*waiter
	// runtime is the cached runtime configuration. Written by the loop and RefreshRuntime;
	// read by Params. runtimeLoad is the number of the load it came from: loads run
	// concurrently (the loop's, on an event, and a SetLimit's own), and one that began earlier
	// but ends later must not put back what a later one read.
	runtime     queue.Runtime
	runtimeLoad uint64
	// loads numbers the runtime configuration's loads as they begin.
	loads atomic.Uint64
	// badRuntime holds the unreadable runtime fields already reported, with the error
	// reported. Written and read by RefreshRuntime. Guarded by mu.
	badRuntime map[string]string
	// pending and claims are keys the loop must grant or claim for at its next step.
	// Written by Acquire and the loop's event handling; drained by the loop. Guarded by mu.
	pending map[string]struct{}
	claims  map[string]struct{}
	// claimAgain are keys whose claim failed, for the next poll to claim for whatever they
	// hold (the poll claims elsewhere only where Claimable says a claim could find anything).
	// Guarded by mu.
	claimAgain map[string]struct{}
	// opened are the lines this node's requests opened, for the loop to put in the index and
	// announce to every node in its next step, all in one round trip; dueAt, keys the loop is
	// to grant at the time given rather than at once (such a line: its ticket's turn comes no
	// sooner). Guarded by mu.
	opened []queue.Activation
	dueAt  map[string]time.Time
	// joined are keys whose lines tickets of this node joined behind others, with the
	// earliest start of the last: the loop grants such a key at once only when it has no time
	// for it yet or the ticket may start sooner than that time. Guarded by mu.
	joined map[string]time.Time
	// announced counts per key the wake-ups (EventQueued) the loop sent whose echo it has not
	// had back: it skips them, the key being scheduled already. Only the loop goroutine touches
	// it; every poll empties it (an echo lost with a connection is not waited for).
	announced map[string]int
	// indexed holds per key with leased jobs until when (server µs) this node's last
	// activation keeps the key in the index of active keys: a grant step re-activates a key only
	// when that falls short of a lease from now. Only the loop goroutine touches it; every poll
	// drops the entries past.
	indexed map[string]int64
	// indexRead is the backend's time (µs) of the poll's last reading of the index of active
	// keys, 0 before the first; indexReads counts the readings (poll.go). Only the loop
	// goroutine touches them.
	indexRead  int64
	indexReads int
	// all asks the loop to grant every key it knows (the runtime configuration changed).
	// Written by event handling, drained by the loop. Guarded by mu.
	all bool
	// counts holds per-key outcome counts not yet written to the backend; unsent, the batch
	// of each key whose writing failed, to be sent again as it was; countSeq numbers the
	// batches. Written by count, drained by flushKey. Guarded by mu.
	counts   map[string]map[string]int64
	unsent   map[string]queue.CountBatch
	countSeq int64
	// flushMu keeps flushes of counts from overlapping (the poll's and Status's).
	flushMu sync.Mutex
	// sweeping is set while a poll's sweep runs (poll.go).
	sweeping atomic.Bool
	// beat is when the last heartbeat that went through was sent; rejoinAgain, when to put
	// this node's waiting requests back in line once more after it rejoined. Written and read
	// by the loop (beat also by start, before it runs).
	beat, rejoinAgain time.Time
	// giveBacks are cancels and refunds that failed, to try again (giveback.go). Written by
	// whoever gives back, drained by the loop's poll. Guarded by mu.
	giveBacks []giveBack
	// owners are the nodes this node granted tickets for lately (id -> last seen); dead, those
	// of them whose heartbeat had lapsed at the last poll. Written by the loop, read by grant
	// steps. Guarded by mu.
	owners map[string]time.Time
	dead   [][]byte
	// held are the slots of concurrency caps this node's calls and job runs hold, by key
	// and id (slots.go). Written by whoever acquires or releases, read by the loop's poll,
	// which renews them. Guarded by mu.
	held map[string]map[ticketID]struct{}
	// adapted is when each adaptive key's factor last changed on this node (adapt.go).
	// Guarded by mu.
	adapted map[string]time.Time
	// cut is when this node last cut each adaptive key's factor. Guarded by mu.
	cut map[string]time.Time
	// stated is the limit each adaptive key's upstream stated lately. Guarded by mu.
	stated map[string]stated
	// releases are slots to free (slots.go), by key; releasing is set while a goroutine of bg
	// frees them. Written by Release, taken by that goroutine. Guarded by mu.
	releases  map[string][][]byte
	releasing bool
	closed    bool
	// jobs is the node's share of durable jobs; advertise asks the loop to record its
	// handlers now. Guarded by mu.
	jobs      jobState
	advertise bool

	jobCtx    context.Context         // the running handlers' parent; cancelled by CancelJobs
	jobCancel context.CancelCauseFunc //
	jobsStop  chan struct{}           // closed by Seal: runs stop retrying to record their end

	// The node's goroutines, counted for its shutdown (each count is safe for concurrent use):
	// runners are the goroutines of runJob (a handler and the recording of how its run ended),
	// renewers those of renew, bg those of giveUp, Stop's taking tickets out of the line and
	// the poll's sweep.
	runners, renewers, bg track.Count
	// quiet counts the backend calls and Observer calls under way for handlers that returned
	// (and for lease renewals); Seal closes it, so that nothing a handler does after the
	// shutdown reaches Redis or the Observer.
	quiet track.Count

	wake     chan struct{} // buffered 1: tells the loop to look at pending and claims
	stop     chan struct{} // closed by Stop
	done     chan struct{} // closed when the loop (and its listener) has returned
	stopOnce sync.Once
	sealOnce sync.Once
}

// New starts a node on be: it reads the runtime configuration and starts the processor.
// cfg must have its defaults filled in and be valid.
func New(ctx context.Context, be queue.Backend, cfg Options) (*Node, error) {
	id := uuid.New()
	n := &Node{
		id:         id[:],
		be:         be,
		cfg:        cfg,
		log:        newLogLimiter(cfg.Logger.With(slog.String("node", id.String()))),
		waiters:    map[string]map[ticketID]*waiter{},
		pending:    map[string]struct{}{},
		claims:     map[string]struct{}{},
		claimAgain: map[string]struct{}{},
		dueAt:      map[string]time.Time{},
		joined:     map[string]time.Time{},
		announced:  map[string]int{},
		indexed:    map[string]int64{},
		counts:     map[string]map[string]int64{},
		unsent:     map[string]queue.CountBatch{},
		owners:     map[string]time.Time{},
		held:       map[string]map[ticketID]struct{}{},
		adapted:    map[string]time.Time{},
		cut:        map[string]time.Time{},
		stated:     map[string]stated{},
		releases:   map[string][][]byte{},
		jobs: jobState{handlers: map[string]Handler{}, jobKeys: map[string]time.Time{}, starved: map[string]struct{}{},
			waiters: map[string]map[chan struct{}]struct{}{}, runs: map[string]chan struct{}{}},
		jobsStop: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := n.start(ctx); err != nil {
		// ctx is New's own bound: whatever the cause, Redis did not let the node start.
		return nil, fmt.Errorf("processor: start: %w: %w", config.ErrUnavailable, err)
	}
	events, stopListen := be.Listen(n.id)
	ready := make(chan struct{})
	go n.loop(events, stopListen, ready)
	<-ready // the first pass (a poll) is done before New returns
	return n, nil
}

// start reads the server's time, sends the node's first heartbeat and loads the runtime
// configuration; on an error it leaves nothing behind (the job context is cancelled).
func (n *Node) start(ctx context.Context) (err error) {
	n.jobCtx, n.jobCancel = context.WithCancelCause(context.Background())
	defer func() {
		if err != nil {
			n.jobCancel(err)
		}
	}()
	now, err := n.be.Time(ctx)
	if err != nil {
		return err
	}
	n.observe(now)
	// Alive before any ticket of this node can be seen by another.
	n.beat = time.Now()
	if _, err := n.be.Heartbeat(ctx, n.id, n.heartbeatTTL()); err != nil {
		return err
	}
	seq := n.loads.Add(1)
	rt, err := n.be.LoadRuntime(ctx)
	if err == nil {
		n.setRuntime(rt, seq)
	}
	return err
}

// ID is the node's id, 16 bytes.
func (n *Node) ID() []byte { return n.id }

// offsetMemory is how long the best reading of the clock offset stands against later, worse
// ones: a clock stepped back is followed within it.
const offsetMemory = time.Second

// observe records a server time just received, keeping the clock offset current. A reading
// (server time less local time at its arrival) falls short of the offset by the time the reply
// took to arrive and be read, which under load is milliseconds: each is a bound from below, and
// the offset is the largest of the last offsetMemory's. Taking the last reading instead set
// every slot's grant step late by the latency of whichever reply came last.
func (n *Node) observe(serverNow int64) {
	now := time.Now().UnixMicro()
	reading := serverNow - now
	for {
		cur := n.offset.Load()
		if reading <= cur && now-n.offsetAt.Load() < offsetMemory.Microseconds() {
			return
		}
		if n.offset.CompareAndSwap(cur, reading) {
			n.offsetAt.Store(now)
			return
		}
	}
}

// ServerTime turns a local time into server µs.
func (n *Node) ServerTime(t time.Time) int64 { return t.UnixMicro() + n.offset.Load() }

// LocalTime turns server µs into a local time.
func (n *Node) LocalTime(us int64) time.Time { return time.UnixMicro(us - n.offset.Load()) }

// Params resolves the limit and the external (group or global) pause of key.
func (n *Node) Params(key string) queue.Params {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paramsLocked(key)
}

func (n *Node) paramsLocked(key string) queue.Params {
	l := n.cfg.limit(key, n.runtime.Limits)
	if l.Adaptive {
		l = l.Scaled(n.factorLocked(key))
	}
	p := queue.Params{Limit: l, StatsTTL: n.cfg.StatsTTL, SlotLease: n.heartbeatTTL()}
	p.ExtPause = queue.PauseInForce(n.ServerTime(time.Now()), n.runtime.Pauses["*"], n.runtime.Pauses[config.Group(key)])
	return p
}

// RefreshRuntime reads the runtime configuration now (used after this node changed it).
func (n *Node) RefreshRuntime(ctx context.Context) error {
	seq := n.loads.Add(1)
	rt, err := n.be.LoadRuntime(ctx)
	if err != nil {
		return err
	}
	n.setRuntime(rt, seq)
	return nil
}

// setRuntime caches rt. A field it holds that could not be read is logged and, for a key's
// limit, counted on that key (CountBadConfig) — once per node and stored value, not at every
// reload.
func (n *Node) setRuntime(rt queue.Runtime, seq uint64) {
	n.mu.Lock()
	if seq < n.runtimeLoad {
		n.mu.Unlock()
		return // a load that began before the one in place: what it read may be older
	}
	if n.runtimeLoad > 0 && !sameRuntime(n.runtime, rt) {
		// A pause or limit changed: every key is due, whether or not its wake-up came.
		n.all = true
	}
	n.runtime, n.runtimeLoad = rt, seq
	var fresh []string
	for f, err := range rt.Bad {
		if n.badRuntime == nil {
			n.badRuntime = map[string]string{}
		}
		if n.badRuntime[f] != err.Error() {
			n.badRuntime[f] = err.Error()
			fresh = append(fresh, f)
		}
	}
	for f := range n.badRuntime {
		if rt.Bad[f] == nil {
			delete(n.badRuntime, f) // fixed or removed: report it again if it goes bad again
		}
	}
	n.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	errs := make([]error, len(fresh))
	for i, f := range fresh {
		errs[i] = rt.Bad[f]
		if key, ok := strings.CutPrefix(f, queue.RuntimeLimitField); ok {
			n.count(key, queue.CountBadConfig)
		}
	}
	n.log.Error("rateltd: processor: unreadable runtime config; a limit keeps its configured value, a pause holds until Resume",
		errors.Join(errs...), "fields", fresh)
}

// sameRuntime reports whether a and b hold the same limits, pauses and factors.
func sameRuntime(a, b queue.Runtime) bool {
	return maps.Equal(a.Limits, b.Limits) && maps.Equal(a.Pauses, b.Pauses) && maps.Equal(a.Factors, b.Factors)
}

// Recheck asks the loop to grant and claim for key at its next step.
func (n *Node) Recheck(key string) {
	n.mu.Lock()
	n.pending[key] = struct{}{}
	n.claims[key] = struct{}{}
	n.mu.Unlock()
	n.poke()
}

func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Done records the outcome of fn for key; counts reach the backend at the next poll.
func (n *Node) Done(key string, failed bool) {
	name := queue.CountSucceeded
	if failed {
		name = queue.CountFailed
	}
	n.count(key, name)
}

// count adds one to a counter of key; counts reach the backend at the next poll, or at
// FlushCounts.
func (n *Node) count(key, name string) {
	n.mu.Lock()
	c := n.counts[key]
	if c == nil {
		c = map[string]int64{}
		n.counts[key] = c
	}
	c[name]++
	n.mu.Unlock()
}

// Stop begins the node's shutdown: every later Acquire, Enqueue, Handle and job Wait fails
// with ErrClosed, the processor stops granting, and every waiting request ends with ErrClosed
// at once. Their tickets are taken out of the line on a goroutine of the node's (bg), each
// within backendTimeout. Jobs granted by a grant step under way go back to their line without
// running. Stopping twice is safe.
func (n *Node) Stop(ctx context.Context) {
	n.stopOnce.Do(func() {
		var left []*waiter
		n.mu.Lock()
		n.closed = true
		for _, byID := range n.waiters {
			for _, w := range byID {
				if !w.done {
					w.done = true
					w.ch <- delivery{kind: deliverClosed}
					left = append(left, w)
				}
			}
		}
		n.mu.Unlock()
		close(n.stop)
		if len(left) == 0 {
			return
		}
		n.bg.Add()
		go func() {
			defer n.bg.Leave()
			for _, w := range left {
				n.cancel(ctx, w)
			}
		}()
	})
}

// Drain waits until the processor goroutine (and its listener), every job runner and lease
// renewer, every goroutine of bg and every admit flight of the backend have ended, or until
// ctx ends; it reports whether all have. Call it after Stop.
func (n *Node) Drain(ctx context.Context) bool {
	loop := false
	select {
	case <-n.done:
		loop = true
	case <-ctx.Done():
	}
	// Each Wait returns at once when ctx has ended: then they only read the counts.
	ok := n.runners.Wait(ctx)
	ok = n.renewers.Wait(ctx) && ok
	ok = n.bg.Wait(ctx) && ok
	ok = n.be.Idle(ctx) == 0 && ok
	return loop && ok
}

// CancelJobs cancels the contexts of the handlers running here, with ErrClosed as their
// cause. A handler that returns an error after that gives its job back to the head of its
// line without spending a retry, until Seal.
func (n *Node) CancelJobs() {
	n.jobCancel(config.ErrClosed)
}

// Seal ends the node's part in the shutdown: it cancels the handlers still running, and from
// then on a handler that returns records nothing and tells no Observer (its lease lapses and
// another node runs the job again). Recording under way gets until ctx ends. Sealing twice is
// safe.
func (n *Node) Seal(ctx context.Context) {
	n.sealOnce.Do(func() {
		n.jobCancel(config.ErrClosed)
		close(n.jobsStop)
		n.quiet.Close()
	})
	n.quiet.Wait(ctx)
}

// Close shuts the node down on its own (the Client interleaves these steps with its own):
// Stop, Drain until ctx ends, CancelJobs and Seal, Finish. It reports whether everything it
// started has ended.
func (n *Node) Close(ctx context.Context) bool {
	n.Stop(ctx)
	ok := n.Drain(ctx)
	n.CancelJobs()
	n.Seal(ctx)
	n.Finish(ctx)
	return ok
}

// Left is what of a node still runs.
type Left struct {
	// Loop: the processor goroutine has not returned.
	Loop bool
	// Handlers counts job runners (a handler, or the recording of how its run ended);
	// Renewers, lease renewals; Background, goroutines taking a ticket out of the line or
	// giving a grant back; Flights, admit pipelines of the backend; Recording, backend or
	// Observer calls for a returned handler that Seal did not see end.
	Handlers, Renewers, Background, Flights, Recording int
}

// Left reports what still runs, without waiting.
func (n *Node) Left() Left {
	l := Left{Handlers: n.runners.Running(), Renewers: n.renewers.Running(), Background: n.bg.Running(),
		Recording: n.quiet.Running()}
	select {
	case <-n.done:
	default:
		l.Loop = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Flights = n.be.Idle(ctx)
	return l
}

// Finish writes the node's pending counts and removes its heartbeat, so that other nodes
// take it for gone at once; within ctx. Call it last.
func (n *Node) Finish(ctx context.Context) {
	_ = n.FlushAllCounts(ctx) // logged
	if err := n.be.Forget(ctx, n.id); err != nil {
		n.log.Error("rateltd: processor: forget heartbeat", err)
	}
}
