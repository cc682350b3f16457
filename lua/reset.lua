-- reset.lua: clears a key's window, lines, unclaimed grants, counters and dead letters. Every
-- ticket that waited is recorded as evicted, so its owner ends it with ErrEvicted. A pause stays.
-- Durable jobs that waited (in line or scheduled) end with the result "evicted"; running ones
-- carry on.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- Reply: how many tickets were evicted.
local now = now_us()
local n = 0
for q = 2, 5 do
  for _, raw in ipairs(redis.call('LRANGE', KEYS[q], 0, -1)) do
    local t = decode(raw)
    if t and t[T_HANDLER] then
      local j = job_get(t[T_ID])
      if j then job_end(now, t[T_ID], j, RESULT_EVICTED, '') end
      n = n + 1
    elseif t then
      mark_evicted(now, t); n = n + 1
    end
  end
end
for _, id in ipairs(redis.call('ZRANGE', SCHED, 0, -1)) do
  local j = job_get(id)
  if j then job_end(now, id, j, RESULT_EVICTED, '') end
  n = n + 1
end
for _, raw in ipairs(redis.call('ZRANGE', GRANTED, 0, -1)) do
  local t = decode(raw)
  if t then mark_evicted(now, t); n = n + 1 end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], GRANTED, STATS, DLQ, LOCAL, SCHED, FAIR)
return n
