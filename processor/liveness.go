package processor

import (
	"context"
	"time"
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
	if err := n.be.Heartbeat(ctx, n.id, n.heartbeatTTL()); err != nil {
		n.log.Error("rateltd: processor: heartbeat", err)
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
