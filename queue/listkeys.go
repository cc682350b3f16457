package queue

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/rateltd/rateltd/config"
)

// scanNode is one Redis that ListKeys SCANs: the server, or one master of a cluster.
type scanNode struct {
	c redis.Cmdable
	// slot is the first hash slot the master serves, which orders the masters; id its
	// cluster node id. Both zero for a single server.
	slot int
	id   string
}

// ListKeys pages through the keys with state by SCAN. On one Redis the cursor is SCAN's; on a
// cluster, which has no SCAN across masters, the pages go through the masters in the order of
// the first slot each serves, and the cursor is "<slot>.<node id>.<SCAN cursor>": the master
// that serves that slot, and its own SCAN cursor. A master that has changed since (a
// failover) is scanned again from its start; one that no longer serves that slot, from the
// next master on.
//
// A key's structures are found by SCAN in batches of their own, but the key is listed only
// by the first of them in listOrder that exists (see listedBy), so each key comes once in a
// listing, as long as its state is neither created nor removed meanwhile and no master changes.
func (r *Redis) ListKeys(ctx context.Context, cursor string, count int) ([]string, string, error) {
	nodes, err := r.scanNodes(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("queue: list keys: %w", err)
	}
	i, cur, err := parseListCursor(cursor, nodes, r.cluster != nil)
	if err != nil {
		return nil, "", err
	}
	// SCAN's COUNT is how many slots to look at, not how many to find: scan on until count
	// keys are found or the scan ends, so that a sparse keyspace does not give empty pages.
	seen := map[string]bool{}
	var keys []string
	for i < len(nodes) {
		n := nodes[i]
		names, next, err := n.c.Scan(ctx, cur, r.ks.perKeyPattern(), int64(max(count, 100))).Result()
		if err != nil {
			return nil, "", fmt.Errorf("queue: list keys: %w", err)
		}
		found, err := r.listedBy(ctx, n.c, names)
		if err != nil {
			return nil, "", fmt.Errorf("queue: list keys: %w", err)
		}
		for _, k := range found {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		if cur = next; cur == 0 {
			i++
		}
		if len(keys) >= count {
			break
		}
	}
	slices.Sort(keys)
	switch {
	case i == len(nodes):
		return keys, "", nil
	case r.cluster == nil:
		return keys, strconv.FormatUint(cur, 10), nil
	}
	return keys, fmt.Sprintf("%d.%s.%d", nodes[i].slot, nodes[i].id, cur), nil
}

// scanNodes returns the server, or the masters of a cluster that serve slots, by their first
// slot.
func (r *Redis) scanNodes(ctx context.Context) ([]scanNode, error) {
	if r.cluster == nil {
		return []scanNode{{c: r.rdb}}, nil
	}
	var mu sync.Mutex
	byID := map[string]*redis.Client{}
	err := r.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		id, err := c.ClusterMyID(ctx).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		byID[id] = c
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	shards, err := r.cluster.ClusterShards(ctx).Result()
	if err != nil {
		return nil, err
	}
	first := map[string]int{} // master id -> first slot
	for _, sh := range shards {
		for _, n := range sh.Nodes {
			if n.Role != "master" {
				continue
			}
			for _, s := range sh.Slots {
				if f, ok := first[n.ID]; !ok || int(s.Start) < f {
					first[n.ID] = int(s.Start)
				}
			}
		}
	}
	var nodes []scanNode
	for id, c := range byID {
		if f, ok := first[id]; ok {
			nodes = append(nodes, scanNode{c: c, slot: f, id: id})
		}
	}
	slices.SortFunc(nodes, func(a, b scanNode) int { return a.slot - b.slot })
	return nodes, nil
}

// parseListCursor returns where a listing resumes: the index in nodes and the SCAN cursor
// there (see ListKeys).
func parseListCursor(cursor string, nodes []scanNode, cluster bool) (int, uint64, error) {
	if cursor == "" {
		return 0, 0, nil
	}
	bad := fmt.Errorf("%w: queue: list keys: bad cursor %q", config.ErrInvalidConfig, cursor)
	if !cluster {
		cur, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil {
			return 0, 0, bad
		}
		return 0, cur, nil
	}
	f := strings.Split(cursor, ".")
	if len(f) != 3 {
		return 0, 0, bad
	}
	slot, err1 := strconv.Atoi(f[0])
	cur, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, bad
	}
	i := slices.IndexFunc(nodes, func(n scanNode) bool { return n.slot >= slot })
	switch {
	case i < 0:
		return len(nodes), 0, nil
	case nodes[i].slot != slot || nodes[i].id != f[1]:
		return i, 0, nil
	}
	return i, cur, nil
}

// listedBy returns the keys that names, a batch of SCAN on c, list: the key of each name that
// is the first of its key's existing structures in listOrder. Other structures found of the
// same key are passed over, whichever batch they come in. One EXISTS per key whose name found
// is not its first structure, pipelined (a key's structures share its slot).
func (r *Redis) listedBy(ctx context.Context, c redis.Cmdable, names []string) ([]string, error) {
	rank := map[string]int{} // key -> rank in listOrder of its first structure in names
	for _, name := range names {
		k, suffix, ok := r.ks.split(name)
		if !ok {
			continue
		}
		at := slices.Index(listOrder, suffix)
		if at < 0 {
			at = len(listOrder) // a name rateltd does not make: after all of its own
		}
		if prev, ok := rank[k]; !ok || at < prev {
			rank[k] = at
		}
	}
	before := map[string]*redis.IntCmd{}
	pipe := c.Pipeline()
	for k, at := range rank {
		if at > 0 {
			before[k] = pipe.Exists(ctx, r.ks.listNames(k)[:at]...)
		}
	}
	if len(before) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	var keys []string
	for k := range rank {
		if cmd, ok := before[k]; !ok || cmd.Val() == 0 {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
