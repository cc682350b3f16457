package processor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/rateltd/rateltd/config"
	"github.com/rateltd/rateltd/queue"
)

// Handler runs a durable job: it gets the job's payload and returns its result.
type Handler func(ctx context.Context, payload []byte) ([]byte, error)

// maxLost is how many lapsed leases a durable job survives; after one more it is dead-lettered
// (a handler that takes its process down every time must not do so for ever).
const maxLost = 5

// jobState is the node's share of durable jobs. Guarded by Node.mu.
type jobState struct {
	handlers map[string]Handler
	// names are the keys of handlers, sorted (what grant steps and heartbeats send).
	names []string
	// live are the handlers some live node runs, as read at the last poll.
	live []string
	// busy counts the jobs running here; jobKeys are keys seen with jobs lately, which share
	// the free workers; starved, keys whose job waited for a worker.
	busy    int
	jobKeys map[string]time.Time
	starved map[string]struct{}
	// waiters are the Wait calls of this node, by job id.
	waiters map[string]map[chan struct{}]struct{}
	// runs are the jobs running here, by job id: a send asks the run's renewer to renew its
	// lease now (the job may have been cancelled).
	runs map[string]chan struct{}
}

// jobKeyMemory is how long a key seen with jobs keeps a share of the free workers.
const jobKeyMemory = time.Minute

// JobID is the id Enqueue returns: the key, '/', and the job's uuid. Wait finds the key in it.
func JobID(key string, id []byte) string {
	u, _ := uuid.FromBytes(id)
	return key + "/" + u.String()
}

// ParseJobID splits an id made by JobID.
func ParseJobID(s string) (key string, id []byte, err error) {
	const n = 36 // a uuid's text
	if len(s) < n+2 || s[len(s)-n-1] != '/' {
		return "", nil, fmt.Errorf("%w: %q is not a job id", config.ErrJobNotFound, s)
	}
	u, err := uuid.Parse(s[len(s)-n:])
	if err != nil {
		return "", nil, fmt.Errorf("%w: %q is not a job id", config.ErrJobNotFound, s)
	}
	key = s[:len(s)-n-1]
	if err := config.ValidateKey(key); err != nil {
		return "", nil, fmt.Errorf("%w: %q: %v", config.ErrJobNotFound, s, err)
	}
	return key, u[:], nil
}

// maxHandlerName bounds a handler's name, in bytes.
const maxHandlerName = 200

// Handle registers h to run the durable jobs named name on this node. Other nodes learn of it
// at their next poll.
func (n *Node) Handle(name string, h Handler) error {
	if err := validHandlerName(name); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%w: handler %q is nil", config.ErrInvalidConfig, name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return config.ErrClosed
	}
	if _, ok := n.jobs.handlers[name]; ok {
		return fmt.Errorf("%w: handler %q is registered already", config.ErrInvalidConfig, name)
	}
	n.jobs.handlers[name] = h
	n.jobs.names = slices.Sorted(maps.Keys(n.jobs.handlers)) // a new slice: readers keep theirs
	n.advertise = true
	n.all = true // lines held for this handler may move now
	n.poke()
	return nil
}

// HandlerLive reports whether some live node runs the handler name: this one (no round trip),
// or one whose last heartbeat recorded it in the backend's handler index.
func (n *Node) HandlerLive(ctx context.Context, name string) (bool, error) {
	n.mu.Lock()
	_, mine := n.jobs.handlers[name]
	n.mu.Unlock()
	if mine {
		return true, nil
	}
	live, err := n.be.Handlers(ctx, nil, 0)
	if err != nil {
		return false, err
	}
	return slices.Contains(live, name), nil
}

func validHandlerName(name string) error {
	if name == "" || len(name) > maxHandlerName {
		return fmt.Errorf("%w: handler name must be 1 to %d bytes, got %d", config.ErrInvalidConfig, maxHandlerName, len(name))
	}
	return nil
}

// Wait waits for the result of the durable job id of key, reading it from the backend when
// woken by the job's end and at every poll interval in any case.
func (n *Node) Wait(ctx context.Context, key string, id []byte) (queue.JobResult, error) {
	sid := JobID(key, id)
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	ws := n.jobs.waiters[sid]
	if ws == nil {
		ws = map[chan struct{}]struct{}{}
		n.jobs.waiters[sid] = ws
	}
	ws[ch] = struct{}{}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.jobs.waiters[sid], ch)
		if len(n.jobs.waiters[sid]) == 0 {
			delete(n.jobs.waiters, sid)
		}
		n.mu.Unlock()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			if queue.Outage(last) {
				return queue.JobResult{}, fmt.Errorf("processor: wait %s: %w: %w (%w)", sid, config.ErrUnavailable, last, ctx.Err())
			}
			if last != nil {
				return queue.JobResult{}, fmt.Errorf("processor: wait %s: %w (%w)", sid, ctx.Err(), last)
			}
			return queue.JobResult{}, stoppedWaiting(ctx, sid)
		case <-n.stop:
			return queue.JobResult{}, config.ErrClosed
		case <-ch:
		case <-timer.C:
		}
		r, err := n.be.Result(ctx, key, id)
		switch {
		case err != nil && ctx.Err() != nil:
			return queue.JobResult{}, stoppedWaiting(ctx, sid) // the read was cut short: that says nothing of Redis
		case err != nil:
			last = err
		case r.State != queue.JobPending:
			return r, nil
		default:
			last = nil
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(n.cfg.PollInterval)
	}
}

// stoppedWaiting is Wait's error when ctx ends first: ctx's own, not ErrTimeout, since the job
// goes on (only its expiry in line is ErrTimeout).
func stoppedWaiting(ctx context.Context, sid string) error {
	return fmt.Errorf("rateltd: stopped waiting for job %s: %w", sid, ctx.Err())
}

// jobDone wakes this node's Wait calls for the job sid.
func (n *Node) jobDone(sid string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.jobs.waiters[sid] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// grantArgs fills in the durable-job part of a grant step over keys: the handlers, and the
// free workers shared out among the keys seen with jobs.
func (n *Node) grantArgs(keys []string) queue.GrantArgs {
	n.mu.Lock()
	defer n.mu.Unlock()
	g := queue.GrantArgs{Node: n.id, Batch: n.cfg.BatchSize, ClaimTimeout: n.cfg.ClaimTimeout, Dead: n.dead,
		Lease: n.cfg.LeaseTimeout, Hold: n.cfg.PollInterval, MaxLost: maxLost}
	if len(n.jobs.names) == 0 || n.closed { // a stopping node takes no job
		g.Others = n.jobs.live
		return g
	}
	g.Mine = n.jobs.names
	for _, h := range n.jobs.live {
		if n.jobs.handlers[h] == nil {
			g.Others = append(g.Others, h)
		}
	}
	free := n.cfg.Workers - n.jobs.busy
	var withJobs []int
	for i, k := range keys {
		if seen, ok := n.jobs.jobKeys[k]; ok && time.Since(seen) < jobKeyMemory {
			withJobs = append(withJobs, i)
		}
	}
	if len(keys) == 1 {
		withJobs = []int{0}
	}
	g.Slots = make([]int, len(keys))
	for j, i := range withJobs {
		g.Slots[i] = free / len(withJobs)
		if j < free%len(withJobs) {
			g.Slots[i]++
		}
	}
	return g
}

// granted handles the jobs and job ends of one key's grant reply. It reports whether the
// reply granted jobs: the key must then stay in the index while their leases last, in case this
// node dies (see indexLeases).
func (n *Node) granted(ctx context.Context, key string, p queue.Params, rep queue.GrantReply) bool {
	for _, id := range rep.Woken {
		n.announce(ctx, JobID(key, id))
	}
	if len(rep.Jobs) == 0 && !rep.Busy {
		return false
	}
	n.mu.Lock()
	n.jobs.jobKeys[key] = time.Now()
	if rep.Busy {
		n.jobs.starved[key] = struct{}{}
		if n.jobs.busy+len(rep.Jobs) < n.cfg.Workers {
			n.pending[key] = struct{}{} // workers are free: it only lacked a share of them
			n.poke()
		}
	}
	for _, j := range rep.Jobs {
		n.jobs.busy++
		n.runners.Add()
		go n.runJob(key, p, j, rep.Now)
	}
	n.mu.Unlock()
	return len(rep.Jobs) > 0
}

// indexLeases keeps in the index of active keys, for at least a lease from now (server µs), the
// keys a grant step has just granted jobs of, in one round trip. A key this node activated
// lately enough is skipped: each activation covers two leases, so that a busy key costs one
// every lease rather than one every step. The index entry is what lets other nodes find the
// leased jobs once the leases lapse, should this node die; a grant step never drops a key
// with leased jobs from the index.
func (n *Node) indexLeases(ctx context.Context, keys []string, now int64) {
	lease := n.cfg.LeaseTimeout.Microseconds()
	var acts []queue.Activation
	for _, k := range keys {
		if n.indexed[k] >= now+lease {
			continue
		}
		acts = append(acts, queue.Activation{Key: k, At: now, Until: now + 2*lease})
	}
	if len(acts) == 0 {
		return
	}
	if err := n.be.Activate(ctx, acts); err != nil {
		n.log.Error("rateltd: activate", err, "keys", len(acts))
		return // the next grant step of these keys tries again
	}
	for _, a := range acts {
		n.indexed[a.Key] = a.Until
	}
}

// forgetIndexed drops what indexed holds about activations past at now (server µs).
func (n *Node) forgetIndexed(now int64) {
	for k, until := range n.indexed {
		if until < now {
			delete(n.indexed, k)
		}
	}
}

// keepActive keeps key in the index of active keys until at least until (server µs), without
// waking anyone: the key has leased or retrying jobs that other nodes must find if this one dies.
func (n *Node) keepActive(ctx context.Context, key string, at, until int64) {
	if err := n.be.Activate(ctx, []queue.Activation{{Key: key, At: at, Until: until}}); err != nil {
		n.log.Error("rateltd: activate", err, "key", key)
	}
}

// announce tells every node (this one too) that the job sid ended.
func (n *Node) announce(ctx context.Context, sid string) {
	n.jobDone(sid)
	if err := n.be.Broadcast(ctx, queue.Event{Kind: queue.EventJobDone, Key: sid}); err != nil {
		n.log.Error("rateltd: broadcast", err, "job", sid)
	}
}

// advertiseHandlers records this node's handlers and reads which ones some live node runs.
func (n *Node) advertiseHandlers(ctx context.Context) {
	n.mu.Lock()
	names := n.jobs.names
	n.advertise = false
	n.mu.Unlock()
	live, err := n.be.Handlers(ctx, names, n.heartbeatTTL())
	if err != nil {
		n.log.Error("rateltd: processor: handlers", err)
		return
	}
	n.mu.Lock()
	n.jobs.live = live
	for k, seen := range n.jobs.jobKeys {
		if time.Since(seen) > jobKeyMemory {
			delete(n.jobs.jobKeys, k)
		}
	}
	n.mu.Unlock()
}

// CancelJob cancels the durable job id of key (see queue.JobBackend.CancelJob) and wakes
// whoever waits for its result; false when no such job waits or runs.
func (n *Node) CancelJob(ctx context.Context, key string, id []byte) (bool, error) {
	c, woken, err := n.be.CancelJob(ctx, key, n.Params(key), id)
	if err != nil {
		return false, queue.Failure(ctx, fmt.Sprintf("processor: cancel job in %q", key), err)
	}
	sid := JobID(key, id)
	switch {
	case woken:
		n.announce(ctx, sid)
	case c == queue.CancelRunning:
		// The node running it learns it at its next renewal; this asks it to renew now.
		n.renewNow(sid)
		if err := n.be.Broadcast(ctx, queue.Event{Kind: queue.EventJobCancel, Key: sid}); err != nil {
			n.log.Error("rateltd: broadcast", err, "job", sid)
		}
	}
	return c != queue.CancelNoJob, nil
}

// renewNow asks the renewer of the job sid, if it runs here, to renew its lease at once.
func (n *Node) renewNow(sid string) {
	n.mu.Lock()
	ch := n.jobs.runs[sid]
	n.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
