package processor

// The poll: the loop's safety net, once a poll interval, and the outcome counts it writes.

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/rateltd/rateltd/queue"
)

// poll is the safety net: it reloads the runtime configuration, makes due every key of the
// index it reads (readIndex: the keys activated lately; all of them now and then) and every
// key this node waits on that it has no time to grant next for, claims for every key this node
// waits on where a claim could find anything, and writes pending counts. A key it has a time
// for after the next poll (at horizon) is made due too when something may have made it due
// earlier without the node knowing: a line opened since its last step (the index says when it
// was last activated), or a lost wake-up of a recheck or a change of the runtime configuration
// (Backend.Missed). So a lost wake-up costs two poll intervals at most (a lost EventQueued
// whose activation also landed more than indexLag late: up to fullIndexEvery), and the poll's
// work grows with the keys it could serve, not with all keys, nor with the keys that wait for
// a slot further away than the next poll.
func (n *Node) poll(ctx context.Context, keys *schedule, horizon time.Time) (swept <-chan struct{}) {
	if err := n.RefreshRuntime(ctx); err != nil {
		n.log.Error("rateltd: processor: load runtime config", err)
	}
	n.checkLiveness(ctx)
	n.renewSlots(ctx)
	n.retryGiveBacks(ctx)
	n.advertiseHandlers(ctx)
	missed, err := n.be.Missed(ctx)
	if err != nil {
		n.log.Error("rateltd: processor: read the count of wake-ups", err)
		missed = true
	}
	active, at, err := n.readIndex(ctx, missed)
	if err != nil {
		n.log.Error("rateltd: processor: read active keys", err)
	}
	// unscheduled: whether to look at key k, last activated at activated (µs; 0 unknown).
	unscheduled := func(k string, activated int64) bool {
		ks := keys.get(k)
		return ks == nil || ks.next.IsZero() || ks.held ||
			ks.next.After(horizon) && (missed || activated > ks.stepped)
	}
	n.mu.Lock()
	for i, k := range active {
		if unscheduled(k, at[i]) {
			n.pending[k] = struct{}{}
		}
	}
	for k := range keys.byKey {
		if unscheduled(k, 0) {
			n.pending[k] = struct{}{}
		}
	}
	var waited []string
	for k, byID := range n.waiters {
		if len(byID) == 0 {
			delete(n.waiters, k)
			continue
		}
		// A node grants every key it waits on, whether or not the index still lists it.
		if unscheduled(k, 0) {
			n.pending[k] = struct{}{}
		}
		waited = append(waited, k)
	}
	for k := range n.claimAgain {
		n.claims[k] = struct{}{}
	}
	clear(n.claimAgain)
	n.mu.Unlock()
	clear(n.announced)
	n.forgetIndexed(n.ServerTime(time.Now()))
	return n.sweep(waited)
}

// Reading the index of active keys. Every key's entry at the first poll, at every
// fullIndexEvery-th and at a poll that may have lost a wake-up; at the others, the entries of
// the keys activated since the last reading less indexLag — an activation is recorded by the
// node whose request opened the line, in its loop's next step, and carries the time the line
// opened, so it may land a little after that time. With many long-lived lines the index holds
// many keys, but few of them were activated lately: 10,000 keys' entries took 13–14 ms of the
// loop's time at every poll, during which due keys waited. A backend clock gone back (a
// failover to a server whose clock is behind) costs a poll: the reading after takes its since
// from the clock as it then reads.
const fullIndexEvery = 30

// indexLag is how late after its time an activation may land and still be found by the next
// partial reading, with the poll at interval poll: the backend's timeout, or two polls if longer.
func indexLag(poll time.Duration) time.Duration { return max(backendTimeout, 2*poll) }

// readIndex reads the entries of the index that the poll is to look at (above), with when
// each key was last activated.
func (n *Node) readIndex(ctx context.Context, missed bool) ([]string, []int64, error) {
	var since int64
	if !missed && n.indexRead != 0 && n.indexReads%fullIndexEvery != 0 {
		since = n.indexRead - indexLag(n.cfg.PollInterval).Microseconds()
	}
	keys, at, now, err := n.be.ActiveKeysSince(ctx, since)
	if err != nil {
		return nil, nil, err
	}
	n.indexRead = now
	n.indexReads++
	return keys, at, nil
}

// sweep looks for grants to claim where keys may hold some and writes the outcome counts, on a
// goroutine of its own, counted in bg: with many keys these take the longest of a poll (10,000
// keys: tens of milliseconds), and slots freeing meanwhile are not to wait for them. The claims
// it finds wake the loop. One sweep at a time: a poll that finds one still running leaves its
// own to the next poll. The channel returned is closed when the sweep is done (nil: none
// started).
func (n *Node) sweep(keys []string) <-chan struct{} {
	if !n.sweeping.CompareAndSwap(false, true) {
		return nil
	}
	done := make(chan struct{})
	n.bg.Add()
	go func() {
		defer n.bg.Leave()
		defer close(done)
		defer n.sweeping.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.PollInterval+backendTimeout)
		defer cancel()
		n.claimWhereAny(ctx, keys)
		n.poke()
		_ = n.FlushAllCounts(ctx) // logged
	}()
	return done
}

// claimWhereAny asks the next step to claim for those of keys where other nodes' grants or
// evictions wait (all of them when the backend cannot tell): a lost wake-up of another node's
// (EventClaim) costs a poll interval at most.
func (n *Node) claimWhereAny(ctx context.Context, keys []string) {
	found, err := n.be.Claimable(ctx, keys)
	if err != nil {
		n.log.Error("rateltd: processor: look for grants to claim", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, k := range keys {
		if err != nil || found[i] {
			n.claims[k] = struct{}{}
		}
	}
}

// FlushCounts writes key's counts gathered since the last flush now, so that a Status read
// next includes this node's own.
func (n *Node) FlushCounts(ctx context.Context, key string) error {
	return n.flush(ctx, []string{key})
}

// FlushAllCounts writes the outcome counts gathered since the last flush, of every key.
func (n *Node) FlushAllCounts(ctx context.Context) error {
	n.mu.Lock()
	keys := make([]string, 0, len(n.counts)+len(n.unsent))
	for k := range n.counts {
		keys = append(keys, k)
	}
	for k := range n.unsent {
		if n.counts[k] == nil {
			keys = append(keys, k)
		}
	}
	n.mu.Unlock()
	return n.flush(ctx, keys)
}

// maxCountCalls bounds the keys whose counts one round trip writes.
const maxCountCalls = 1024

// flush writes the counts of keys, maxCountCalls keys a round trip: first a key's batch whose
// sending failed before, sent again as it was (the backend adds a batch once, so a batch that
// was added although its reply was lost is not added twice), then what was counted since, as a
// new batch. A batch that fails stays for the next flush; counts gathered meanwhile wait beside
// it, so a key has at most one unsent batch whatever the outage's length. A round trip that
// fails for every key (Redis unreachable) ends the flush: the keys after it keep their batches
// for the next, rather than each round trip waiting for the same failure. Flushes do not
// overlap (flushMu).
func (n *Node) flush(ctx context.Context, keys []string) error {
	n.flushMu.Lock()
	defer n.flushMu.Unlock()
	var first error
	for range 2 { // an unsent batch, then the counts since
		calls := n.countCalls(keys)
		if len(calls) == 0 {
			break
		}
		written := make([]string, 0, len(calls)) // the keys whose counts since are sent next
		for from := 0; from < len(calls); from += maxCountCalls {
			chunk := calls[from:min(from+maxCountCalls, len(calls))]
			errs := n.be.AddCounters(ctx, chunk)
			if !slices.Contains(errs, nil) {
				n.log.Error("rateltd: processor: write counters; kept to send again", errs[0], "keys", len(calls)-from)
				return cmp.Or(first, errs[0])
			}
			n.mu.Lock()
			for i, err := range errs {
				if err != nil {
					n.log.Error("rateltd: processor: write counters; kept to send again", err, "key", chunk[i].Key)
					first = cmp.Or(first, err)
					continue
				}
				delete(n.unsent, chunk[i].Key)
				written = append(written, chunk[i].Key)
			}
			n.mu.Unlock()
		}
		keys = written
	}
	return first
}

// countCalls returns the batch to send of each of keys that has one: its unsent batch, or a new
// batch of what was counted (kept as unsent until written).
func (n *Node) countCalls(keys []string) []queue.CountCall {
	n.mu.Lock()
	defer n.mu.Unlock()
	calls := make([]queue.CountCall, 0, len(keys))
	for _, key := range keys {
		b, ok := n.unsent[key]
		if !ok {
			c := n.counts[key]
			if c == nil {
				continue
			}
			delete(n.counts, key)
			n.countSeq++
			b = queue.CountBatch{Node: n.id, Seq: n.countSeq, Deltas: c}
			n.unsent[key] = b
		}
		calls = append(calls, queue.CountCall{Key: key, P: n.paramsLocked(key), Batch: b})
	}
	return calls
}
