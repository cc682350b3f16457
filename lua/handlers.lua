-- handlers.lua: records the durable-job handlers a live node runs, and lists those any live
-- node runs. No per-key structure.
-- KEYS: 1 the handler index (HASH name -> µs the latest node running it stops counting as alive)
-- ARGV: 1 time to live µs  2.. names of the handlers the calling node runs
-- Reply: the names of the handlers some live node runs.
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local until_ = now + tonumber(ARGV[1])
for i = 2, #ARGV do
  local old = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
  if not old or old < until_ then redis.call('HSET', KEYS[1], ARGV[i], string.format('%d', until_)) end
end
local live = {}
local kv = redis.call('HGETALL', KEYS[1])
for i = 1, #kv, 2 do
  if tonumber(kv[i + 1]) > now then live[#live + 1] = kv[i]
  elseif tonumber(kv[i + 1]) < now - 3600000000 then redis.call('HDEL', KEYS[1], kv[i]) end
end
if #ARGV > 1 and redis.call('PTTL', KEYS[1]) < 7200000 then redis.call('PEXPIRE', KEYS[1], 7200000) end
return live
