package queue

import (
	"encoding/hex"
	"hash/fnv"
	"strconv"
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
}

// perKey returns the KEYS of a per-key script, in the order lib.lua expects.
func (k keyspace) perKey(key string) []string {
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
