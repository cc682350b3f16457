-- enqueue_end.lua: the end of enqueue.lua.
local kept = redis.call('ZSCORE', REXP, ID)
if redis.call('HEXISTS', JOBS, ID) == 1 or (kept and tonumber(kept) > now) then
  return {5, now, 0, 0, 0, '', 0}
end
local reply = line_admit()
if reply[1] == 2 then
  redis.call('HSET', JOBS, ID, ARGV[14])
  extend_ttl(JOBS, DEADLINE - now + 60000000)
end
return reply
