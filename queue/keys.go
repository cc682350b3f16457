package queue

import (
	"encoding/hex"
	"hash/fnv"
	"strconv"
	"sync"
)

// keyspace builds every Redis key name rateltd uses; no other code makes one.
//
// Per-key structures carry the hash tag {key}, so each script touches a single cluster slot:
//
//	<prefix>:{<key>}:w         window state (sliding-log ZSET, fixed-window HASH or GCRA string)
//	<prefix>:{<key>}:q:<0-3>   the lines, one LIST per priority (0 low … 3 critical)
//	<prefix>:{<key>}:granted   ZSET raw ticket -> grant time, granted for another node to claim
//	<prefix>:{<key>}:paused    the key's own pause (0 forever, else until µs)
//	<prefix>:{<key>}:stats     HASH of counters
//	<prefix>:{<key>}:dlq       LIST of corrupt tickets
//	<prefix>:{<key>}:evicted   ZSET ticket id -> deadline, for owners to learn of evictions
//
// Cross-key structures are never touched by a per-key script:
//
//	<prefix>:active:<n>        ZSET key -> last activation µs, the index of keys with a line (sharded)
//	<prefix>:config            HASH of runtime limits and group/global pauses
//	<prefix>:events            pub/sub channel to every node
//	<prefix>:node:<id hex>     pub/sub channel to one node
type keyspace struct {
	prefix string
	shards int
	names  *nameCache // nil: no caching
}

// nameCache keeps the per-key names of recently used keys, so that the fast path does not
// build ten strings per request. Bounded: it starts afresh when full.
type nameCache struct {
	mu sync.Mutex
	m  map[string]perKeyNames // guarded by mu
}

// perKeyNames are a key's script KEYS, as strings and as command arguments.
type perKeyNames struct {
	names []string
	args  []any
}

const nameCacheSize = 4096

// perKey returns the KEYS of a per-key script, in the order limits.lua expects. The slice is
// shared: callers must not change it.
func (k keyspace) perKey(key string) []string { return k.cached(key).names }

// perKeyArgs is perKey as command arguments, boxed once per key rather than once per call.
func (k keyspace) perKeyArgs(key string) []any { return k.cached(key).args }

func (k keyspace) cached(key string) perKeyNames {
	c := k.names
	if c == nil {
		return newPerKeyNames(k.buildPerKey(key))
	}
	c.mu.Lock()
	n, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return n
	}
	n = newPerKeyNames(k.buildPerKey(key))
	c.mu.Lock()
	if len(c.m) >= nameCacheSize {
		clear(c.m)
	}
	c.m[key] = n
	c.mu.Unlock()
	return n
}

func newPerKeyNames(names []string) perKeyNames {
	args := make([]any, len(names))
	for i, s := range names {
		args[i] = s
	}
	return perKeyNames{names: names, args: args}
}

func (k keyspace) buildPerKey(key string) []string {
	base := k.prefix + ":{" + key + "}:"
	return []string{
		base + "w",
		base + "q:0", base + "q:1", base + "q:2", base + "q:3",
		base + "granted",
		base + "paused",
		base + "stats",
		base + "dlq",
		base + "evicted",
	}
}

// Positions in perKey's result.
const (
	kWindow  = 0
	kPaused  = 6
	kStats   = 7
	kEvicted = 9
)

func (k keyspace) shardOf(key string) string {
	h := fnv.New32a()
	h.Write([]byte(key))
	return k.shard(int(h.Sum32() % uint32(k.shards)))
}

func (k keyspace) shard(i int) string { return k.prefix + ":active:" + strconv.Itoa(i) }

func (k keyspace) runtime() string { return k.prefix + ":config" }

func (k keyspace) events() string { return k.prefix + ":events" }

func (k keyspace) node(id []byte) string { return k.prefix + ":node:" + hex.EncodeToString(id) }
