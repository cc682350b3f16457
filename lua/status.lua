-- status.lua: a key's state for Status. Reads only.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- Reply: {now, used, remaining, queued low, normal, high, critical, oldest enqueued µs (0: none),
--   own pause (-2 none, 0 forever, else until µs), unclaimed grants, dead letters, {counter, value, ...},
--   durable jobs not ended, of them running or waiting for a retry}
local now = now_us()
local free = lim_free(now, false)
local used
if ALG == 0 then
  used = redis.call('ZCOUNT', W, '(' .. I(now - WIN), '+inf')
elseif ALG == 1 then
  used = MAX - free
else
  used = BURST - free
end
local out = {now, used, free}
local oldest = 0
for q = 2, 5 do
  out[#out + 1] = redis.call('LLEN', KEYS[q])
  local head = redis.call('LINDEX', KEYS[q], 0)
  local t = head and decode(head)
  if t and type(t[T_ENQUEUED]) == 'number' and (oldest == 0 or t[T_ENQUEUED] < oldest) then oldest = t[T_ENQUEUED] end
end
out[#out + 1] = oldest
local own = redis.call('GET', PAUSED)
if own and (tonumber(own) == 0 or tonumber(own) > now) then out[#out + 1] = tonumber(own) else out[#out + 1] = -2 end
out[#out + 1] = redis.call('ZCARD', GRANTED)
out[#out + 1] = redis.call('LLEN', DLQ)
out[#out + 1] = redis.call('HGETALL', STATS)
out[#out + 1] = redis.call('HLEN', JOBS)
out[#out + 1] = redis.call('ZCARD', LEASE)
return out
