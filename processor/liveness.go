package processor

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/rateltd/rateltd/queue"
)

// Nodes heartbeat at every poll. A node whose heartbeat has lapsed is dead: the processors
// that granted it tickets learn it at their next poll, and from then on their grant steps drop
// its waiting tickets and refund its unclaimed grants at once, instead of granting them one
// by one and refunding each after ClaimTimeout.

// heartbeatTTL is how long a heartbeat lasts: several polls, so that a slow poll or a pause
// of the process is not taken for death.
func (n *Node) heartbeatTTL() time.Duration { return max(5*n.cfg.PollInterval, 3*time.Second) }

// ownerMemory is how long an owner seen in a grant is checked for life after it was last seen.
const ownerMemory = 10 * time.Minute

// maxDead bounds the dead nodes a grant step is told of.
const maxDead = 100

// noteOwners records the owners of tickets this node granted for others.
func (n *Node) noteOwners(owners [][]byte) {
	if len(owners) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	for _, o := range owners {
		n.owners[string(o)] = now
	}
}

// checkLiveness renews this node's heartbeat and finds which owners seen lately are dead.
// Called by the loop at each poll.
func (n *Node) checkLiveness(ctx context.Context) {
	sent := time.Now()
	switch lapsed, err := n.be.Heartbeat(ctx, n.id, n.heartbeatTTL()); {
	case err != nil:
		n.log.Error("rateltd: processor: heartbeat", err)
	case lapsed || sent.Sub(n.beat) > n.heartbeatTTL():
		// Lapsed as Redis saw it, or as this node knows it: no heartbeat of its went through
		// for longer than the TTL (one whose reply was lost may have renewed the key, and
		// hidden the lapse that other nodes saw meanwhile).
		n.beat = sent
		n.rejoin(ctx)
		// Until every other node has polled again, some may still hold this node for dead
		// and drop the tickets it has just put back: once more, a heartbeat's TTL later.
		n.rejoinAgain = sent.Add(n.heartbeatTTL())
	default:
		n.beat = sent
		if !n.rejoinAgain.IsZero() && sent.After(n.rejoinAgain) {
			n.rejoinAgain = time.Time{}
			n.rejoin(ctx)
		}
	}
	n.mu.Lock()
	ids := make([][]byte, 0, len(n.owners))
	for o, seen := range n.owners {
		if time.Since(seen) > ownerMemory {
			delete(n.owners, o)
			continue
		}
		ids = append(ids, []byte(o))
	}
	n.mu.Unlock()
	alive, err := n.be.Alive(ctx, ids)
	if err != nil {
		n.log.Error("rateltd: processor: read heartbeats", err)
		return
	}
	var dead [][]byte
	for i, ok := range alive {
		if !ok && len(dead) < maxDead {
			dead = append(dead, ids[i])
		}
	}
	n.mu.Lock()
	n.dead = dead
	n.mu.Unlock()
}

// rejoin puts this node's waiting requests back in line after its heartbeat was found lapsed:
// either the node was silent longer than its TTL (stopped, cut off), so that other nodes may
// have taken it for dead and dropped its tickets, or Redis lost its memory (restarted without
// persistence, failed over to a replica that had not received them). Each ticket still waiting
// is first taken out of the line (or its unclaimed grant given back), so that none is there
// twice, then admitted again, oldest first, keeping its id and deadline: granted at once when
// the line is empty and the limit allows, else queued behind those who came meanwhile.
// Called by the loop.
func (n *Node) rejoin(ctx context.Context) {
	n.mu.Lock()
	var ws []*waiter
	for _, byID := range n.waiters {
		for _, w := range byID {
			if !w.done && w.queued {
				ws = append(ws, w)
			}
		}
	}
	n.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	slices.SortFunc(ws, func(a, b *waiter) int { return cmp.Compare(a.t.Enqueued, b.t.Enqueued) })
	n.log.Error("rateltd: processor: heartbeat had lapsed; waiting requests rejoin their lines", errLapsed, "waiting", len(ws))
	for _, w := range ws {
		select {
		case <-n.stop:
			return // shutting down: the waiters end with ErrClosed
		default:
		}
		deadline := n.LocalTime(w.t.Deadline)
		if time.Until(deadline) <= 0 {
			continue // it ends by its deadline anyway
		}
		// Each of its own time: the poll's context would not last for a long line of them.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
		if _, err := n.be.Cancel(bctx, w.p, w.cancelTicket(), w.raw); err != nil {
			cancel()
			n.log.Error("rateltd: processor: rejoin", err, "key", w.t.Key)
			continue
		}
		rep, err := n.admit(bctx, w.p, w.t, w.raw, deadline)
		if err != nil {
			cancel()
			n.log.Error("rateltd: processor: rejoin", err, "key", w.t.Key)
			continue
		}
		n.observe(rep.Now)
		switch rep.Outcome {
		case queue.Granted:
			n.count(w.t.Key, queue.CountAdmitted)
			if !n.deliver(w.t.Key, w.t.ID, delivery{kind: deliverGrant, grantedAt: rep.Now}) {
				n.refund(bctx, w, delivery{kind: deliverGrant, grantedAt: rep.Now}) // its caller left meanwhile
			}
		case queue.Queued:
			w.keepLineSuffix(rep.LineSuffix)
			n.queued(bctx, w.t.Key, rep, w.t.Deadline)
			n.Recheck(w.t.Key) // and claim: grants for its tickets of before may wait
		}
		// Refused (line full, deadline out of reach): the request ends by its deadline.
		cancel()
	}
}

// errLapsed is logged when a node's heartbeat was found lapsed.
var errLapsed = errors.New("heartbeat lapsed or lost by Redis")
