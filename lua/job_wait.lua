-- job_wait.lua: reads a durable job's result for Wait, and records that somebody waits for it.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 job id
-- Reply: {0} no such job (or its result has expired), {1} not done yet, {2, result}.
local ID = ARGV[7]
local now = now_us()
local r = redis.call('HGET', RES, ID)
if r then
  local exp = redis.call('ZSCORE', REXP, ID)
  if exp and tonumber(exp) > now then return {2, r} end
  return {0}
end
if redis.call('HEXISTS', JOBS, ID) == 1 then
  redis.call('SADD', WAITED, ID)
  local ttl = redis.call('PTTL', JOBS)
  if ttl > 0 then extend_ttl(WAITED, ttl * 1000) end
  return {1}
end
return {0}
