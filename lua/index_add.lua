-- index_add.lua: records in its shard of the active-key index that a key has a line, and keeps
-- the shard alive at least until the deadline of the ticket that opened the line (TTLs only grow
-- here). No per-key structure.
-- KEYS: 1 index shard (ZSET key -> last activation µs)
-- ARGV: 1 key  2 activated at µs  3 time to live ms
-- Reply: 1.
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
