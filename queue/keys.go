package queue

import (
	"encoding/hex"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rateltd/rateltd/config"
)

// keyspace builds every Redis key name rateltd uses; no other code makes one.
//
// Per-key structures carry the hash tag {key}, so each script touches a single cluster slot:
//
//	<prefix>:{<key>}:w         sliding-log window (ZSET); :wf fixed window (HASH); :wt GCRA (string)
//	<prefix>:{<key>}:w:<i>     the window of the limit's further rate i (1…4), :wf:<i>, :wt:<i> alike
//	<prefix>:{<key>}:run       ZSET id -> µs its slot of the concurrency cap lapses unless renewed
//	<prefix>:{<key>}:q:<0-3>   the lines, one LIST per priority, by Priority.Line (0 low … 3 critical)
//	<prefix>:{<key>}:granted   ZSET raw ticket -> grant time, granted for another node to claim
//	<prefix>:{<key>}:paused    the key's own pause (-1 forever, else until µs; see NotPaused)
//	<prefix>:{<key>}:stats     HASH of counters
//	<prefix>:{<key>}:dlq       LIST of corrupt tickets
//	<prefix>:{<key>}:evicted   ZSET ticket id -> deadline, for owners to learn of evictions
//	<prefix>:{<key>}:fair      HASH the state of the key's lines served in fair shares between
//	                           tenants (fair.lua): each line's round, the tenants' numbers,
//	                           credits and waiting counts
//	<prefix>:{<key>}:jobs      HASH durable job id -> record
//	<prefix>:{<key>}:lease     ZSET durable job id -> µs its lease (or its wait for a retry) ends
//	<prefix>:{<key>}:res       HASH durable job id -> result; :rexp ZSET id -> µs the result expires
//	<prefix>:{<key>}:waited    SET durable job ids Wait asks for (to be woken when they end)
//	<prefix>:{<key>}:sched     ZSET durable job id -> µs it joins its line (scheduled jobs)
//	<prefix>:{<key>}:lg        ZSET raw ticket -> grant µs, grants made for the granting node's own tickets lately
//
// Cross-key structures are never touched by a per-key script:
//
//	<prefix>:active:<n>        ZSET key -> last activation µs, the index of keys with a line (sharded)
//	<prefix>:config            HASH of runtime limits and group/global pauses
//	<prefix>:events            pub/sub channel to every node
//	<prefix>:node:<id hex>     pub/sub channel to one node
//	<prefix>:hb:<id hex>       a node's heartbeat (string with a TTL of a few poll intervals)
//	<prefix>:handlers          HASH durable-job handler -> µs until which some live node runs it
type keyspace struct {
	prefix string
	shards int
	names  *nameCache // nil: no caching
}

// nameCache keeps the per-key names of recently used keys, so that the fast path does not
// build ten strings per request. Bounded: it starts afresh when full.
type nameCache struct {
	mu sync.Mutex
	m  map[nameCacheKey]perKeyNames // guarded by mu
}

type nameCacheKey struct {
	key   string
	alg   config.Algorithm
	rates int  // the limit's number of rates
	conc  bool // the limit has a concurrency cap
	jobs  bool
}

// cacheKey is the names' cache key of key under limit l, with or without the jobs' names.
func cacheKey(key string, l config.Limit, jobs bool) nameCacheKey {
	return nameCacheKey{key, l.Algorithm, l.NumRates(), l.Concurrency > 0, jobs}
}

// perKeyNames are a key's script KEYS, as strings and as command arguments; lean, the KEYS of
// the key sent lean to Admit or AdmitMany (all but stats, dlq, evicted and fair: see
// admit_fast.lua, admit_many.lua); busy, whether the key's last admit sent with its names met a
// line, a pause or its limit, or took the window's last (kept by keepBusy, read by mayLean),
// shared by every copy.
type perKeyNames struct {
	names []string
	args  []any
	lean  []any
	busy  *atomic.Bool
}

const nameCacheSize = 4096

// windowSuffix names the window of each algorithm apart: each keeps a Redis type of its own
// (ZSET, HASH, string), so a key whose algorithm changes at run time starts a fresh window
// instead of meeting the old one's type.
var windowSuffix = [...]string{config.SlidingWindow: "w", config.FixedWindow: "wf", config.TokenBucket: "wt"}

// perKey returns the KEYS of a per-key script for a key under limit l, in the order limits.lua
// expects: the eleven of every per-key script, then the windows of l's further rates. The slice
// is shared: callers must not change it.
func (k keyspace) perKey(key string, l config.Limit) []string {
	return k.cached(cacheKey(key, l, false)).names
}

// perKeyArgs is perKey as command arguments, boxed once per key rather than once per call.
func (k keyspace) perKeyArgs(key string, l config.Limit) []any {
	return k.cached(cacheKey(key, l, false)).args
}

// withJobs returns the KEYS of a per-key script that knows durable jobs (see jobs.lua): the eleven
// of every per-key script, the seven of jobs.lua, then the windows of l's further rates.
func (k keyspace) withJobs(key string, l config.Limit) []string {
	return k.cached(cacheKey(key, l, true)).names
}

// withJobsArgs is withJobs boxed as command arguments.
func (k keyspace) withJobsArgs(key string, l config.Limit) []any {
	return k.cached(cacheKey(key, l, true)).args
}

// plain returns the eleven names of every per-key script's KEYS for key, for reading one of them
// (kPaused, kStats, kDLQ) outside a script.
func (k keyspace) plain(key string) []string { return k.buildPerKey(nameCacheKey{key: key}) }

// windows returns the names of key's windows under every algorithm, of every rate a limit
// may hold.
func (k keyspace) windows(key string) []string {
	base := k.prefix + ":{" + key + "}:"
	out := make([]string, 0, len(windowSuffix)*(1+config.MaxAlso))
	for _, s := range windowSuffix {
		out = append(out, base+s)
		for i := 1; i <= config.MaxAlso; i++ {
			out = append(out, base+s+":"+strconv.Itoa(i))
		}
	}
	return out
}

func (k keyspace) cached(ck nameCacheKey) perKeyNames {
	c := k.names
	if c == nil {
		return newPerKeyNames(k.buildPerKey(ck))
	}
	c.mu.Lock()
	n, ok := c.m[ck]
	c.mu.Unlock()
	if ok {
		return n
	}
	n = newPerKeyNames(k.buildPerKey(ck))
	c.mu.Lock()
	if len(c.m) >= nameCacheSize {
		clear(c.m)
	}
	c.m[ck] = n
	c.mu.Unlock()
	return n
}

func newPerKeyNames(names []string) perKeyNames {
	args := make([]any, len(names))
	for i, s := range names {
		args[i] = s
	}
	lean := slices.Concat(args[:kStats], args[kPerKey:])
	return perKeyNames{names: names, args: args, lean: lean, busy: new(atomic.Bool)}
}

// base begins every per-key name of key.
func (k keyspace) base(key string) string { return k.prefix + ":{" + key + "}:" }

func (k keyspace) buildPerKey(ck nameCacheKey) []string {
	base := k.base(ck.key)
	w := base + windowSuffix[ck.alg]
	names := []string{
		w,
		base + "q:0", base + "q:1", base + "q:2", base + "q:3",
		base + "granted",
		base + "paused",
		base + "stats",
		base + "dlq",
		base + "evicted",
		base + "fair",
	}
	if ck.jobs {
		names = append(names, base+"jobs", base+"lease", base+"res", base+"rexp", base+"waited", base+"lg", base+"sched")
	}
	for i := 1; i < ck.rates; i++ {
		names = append(names, w+":"+strconv.Itoa(i))
	}
	if ck.conc {
		names = append(names, base+"run")
	}
	return names
}

func (k keyspace) handlers() string { return k.prefix + ":handlers" }

// Positions in perKey's result.
const (
	kWindow  = 0
	kPaused  = 6
	kStats   = 7
	kDLQ     = 8
	kEvicted = 9
	kFair    = 10
	kPerKey  = 11 // how many names every per-key script has
	kJobs    = 11 // of withJobs' result
	kSched   = 17 // of withJobs' result
)

// perKeyPattern matches the names of every per-key structure (for SCAN in admin listings).
func (k keyspace) perKeyPattern() string { return escapeGlob(k.prefix) + ":{*}:*" }

// split returns the rate-limit key a per-key structure's name belongs to and the name's
// suffix (the text after "{key}:", one of listOrder). Keys cannot hold braces, so the name's
// first '}' after the prefix ends the key.
func (k keyspace) split(name string) (key, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(name, k.prefix+":{")
	if !ok {
		return "", "", false
	}
	key, suffix, ok = strings.Cut(rest, "}:")
	return key, suffix, ok && key != ""
}

// listOrder holds the suffix of every per-key structure (those of buildPerKey, withJobs and
// windows), in the order ListKeys looks for them: a key is listed by the first of them that
// exists, so once, however SCAN spreads its structures over batches. The counters come first
// since nearly every key with state has them: a key found by them costs no look-up.
var listOrder = append([]string{"stats", "w", "wf", "wt", "q:0", "q:1", "q:2", "q:3", "granted", "paused", "dlq", "evicted",
	"fair",
	"jobs", "lease", "res", "rexp", "waited", "lg", "sched", "run"}, furtherWindows()...)

// furtherWindows are the suffixes of the windows of further rates (w:1 … wt:4).
func furtherWindows() []string {
	var out []string
	for _, s := range windowSuffix {
		for i := 1; i <= config.MaxAlso; i++ {
			out = append(out, s+":"+strconv.Itoa(i))
		}
	}
	return out
}

// listNames returns the names of key's structures in listOrder.
func (k keyspace) listNames(key string) []string {
	base := k.prefix + ":{" + key + "}:"
	out := make([]string, len(listOrder))
	for i, s := range listOrder {
		out[i] = base + s
	}
	return out
}

// escapeGlob quotes the characters SCAN's MATCH gives a meaning to.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (k keyspace) shardOf(key string) string {
	h := fnv.New32a()
	h.Write([]byte(key))
	return k.shard(int(h.Sum32() % uint32(k.shards)))
}

func (k keyspace) shard(i int) string { return k.prefix + ":active:" + strconv.Itoa(i) }

func (k keyspace) runtime() string { return k.prefix + ":config" }

func (k keyspace) events() string { return k.prefix + ":events" }

// wakes is the count of numbered wake-ups sent on events (wakes.go).
func (k keyspace) wakes() string { return k.prefix + ":wakes" }

func (k keyspace) node(id []byte) string { return k.prefix + ":node:" + hex.EncodeToString(id) }

// heartbeat is the key whose presence says that a node is alive.
func (k keyspace) heartbeat(id []byte) string { return k.prefix + ":hb:" + hex.EncodeToString(id) }

// clusterSlots is how many hash slots a Redis Cluster has.
const clusterSlots = 16384

// hashSlot is the cluster slot of every per-key structure of key: Redis hashes only the hash
// tag, {key}, as crc16(key) mod 16384.
func hashSlot(key string) uint16 { return crc16(key) % clusterSlots }

// crc16 is the CRC16 of Redis Cluster's key hashing (CCITT, XMODEM).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
