package processor

import (
	"context"
	"errors"
	"time"

	"github.com/rateltd/rateltd/queue"
)

// The slots of concurrency caps (config.Limit.Concurrency). A grant of a key with a cap takes
// a slot in the key's run set, under a lease as long as the node's heartbeat; the node renews
// the slots its calls and job runs hold at every poll, with its heartbeat, and frees each when
// the call (or the run) ends. A slot of a node that died lapses with its lease.

// Hold records that this node's call (or job run) of grant g on key holds a slot, when key's
// limit has a concurrency cap; it reports whether it does (Release is then owed).
func (n *Node) Hold(key string, id [16]byte) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.paramsLocked(key).Limit.Concurrency == 0 {
		return false
	}
	ids := n.held[key]
	if ids == nil {
		ids = map[ticketID]struct{}{}
		n.held[key] = ids
	}
	ids[ticketID(id)] = struct{}{}
	return true
}

// Release frees the slot that Hold recorded, without waiting for the backend: a goroutine of
// the node's frees the slots released meanwhile, one command per key for all of them, and
// wakes the processors when requests wait for them. Tried again at the next polls when the
// backend fails; the slot lapses by itself at worst.
func (n *Node) Release(key string, id [16]byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.held[key], ticketID(id))
	if len(n.held[key]) == 0 {
		delete(n.held, key)
	}
	n.releases[key] = append(n.releases[key], append([]byte(nil), id[:]...))
	if !n.releasing {
		n.releasing = true
		n.bg.Add()
		go n.releaseAll()
	}
}

// releaseAll frees the slots of n.releases until none are left.
func (n *Node) releaseAll() {
	defer n.bg.Leave()
	for {
		n.mu.Lock()
		batch := n.releases
		if len(batch) == 0 {
			n.releasing = false
			n.mu.Unlock()
			return
		}
		n.releases = map[string][][]byte{}
		n.mu.Unlock()
		for key, ids := range batch {
			n.releaseSlots(key, ids)
		}
	}
}

// releaseSlots frees the slots of ids on key.
func (n *Node) releaseSlots(key string, ids [][]byte) {
	ctx, cancel := context.WithTimeout(context.Background(), backendTimeout)
	defer cancel()
	p := n.Params(key)
	do := func(ctx context.Context) error {
		waiting, err := n.be.ReleaseSlots(ctx, key, p, ids)
		if err == nil && waiting > 0 {
			n.wakeKey(ctx, key)
		}
		return err
	}
	if err := do(ctx); err != nil {
		n.log.Error("rateltd: processor: release slots; to be tried again", err, "key", key)
		n.later(key, time.Now().Add(n.heartbeatTTL()), do)
	}
}

// errSlotsLapsed is logged when slots lapsed while their calls ran: the node was silent for
// longer than its heartbeat, and others may have started in their place.
var errSlotsLapsed = errors.New("slots lapsed while their calls ran")

// renewSlots renews the slots this node holds, key by key. Called by the loop at each poll.
func (n *Node) renewSlots(ctx context.Context) {
	n.mu.Lock()
	type renewal struct {
		key string
		p   queue.Params
		ids [][]byte
	}
	var all []renewal
	for key, held := range n.held {
		r := renewal{key: key, p: n.paramsLocked(key)}
		for id := range held {
			r.ids = append(r.ids, append([]byte(nil), id[:]...))
		}
		all = append(all, r)
	}
	n.mu.Unlock()
	for _, r := range all {
		got, err := n.be.RenewSlots(ctx, r.key, r.p, r.ids)
		switch {
		case err != nil:
			n.log.Error("rateltd: processor: renew slots", err, "key", r.key)
		case got < len(r.ids):
			n.log.Error("rateltd: processor: renew slots", errSlotsLapsed, "key", r.key, "lapsed", len(r.ids)-got)
		}
	}
}
