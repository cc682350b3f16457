-- counters.lua: adds one node's batch of counts to a key's counters, once. A batch sent again
-- because its reply was lost (a connection reset after Redis ran it) carries the same
-- sequence number and changes nothing. Twin: Memory.AddCounters.
-- KEYS: 1 the key's stats hash
-- ARGV: 1 node id  2 the batch's sequence number (increasing per node)  3 stats TTL ms
--       then counter name, delta pairs
-- Reply: 1 added, 0 added before.
local field = 'seq:' .. ARGV[1]
if tonumber(ARGV[2]) <= tonumber(redis.call('HGET', KEYS[1], field) or '0') then
  return 0
end
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], field, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
