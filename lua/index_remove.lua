-- index_remove.lua: removes a key from its shard of the active-key index, unless it was activated
-- again since the caller looked (its score is at or after the given time). No per-key structure.
-- KEYS: 1 index shard (ZSET key -> last activation µs)
-- ARGV: 1 key  2 before µs
-- Reply: 1 removed, 0 kept.
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if at and tonumber(at) < tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
