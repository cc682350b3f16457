-- status.lua: a key's state for Status. Reads only.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- Reply: {now, used, remaining, queued low, normal, high, critical, oldest enqueued µs (0: none),
--   own pause (see pause.lua), unclaimed grants, dead letters, {counter, value, ...},
--   durable jobs not ended, of them running or waiting for a retry, {used, remaining} of each
--   rate in order, how many hold a slot of the concurrency cap, durable jobs scheduled,
--   {tenant, tickets waiting, ...} of the tenants waiting in lines served in fair shares}; used and remaining are the
--   tightest rate's (see limits.lua), with no rate those of the concurrency cap
local now = now_us()
lim_free(now, false)
local rates = lim_used(now)
local out = {now, lim_running(now), CFREE}
if NR > 0 then
  local tight = lim_tight()
  out = {now, rates[2 * tight - 1], FREE[tight]}
end
local oldest = 0
for q = 2, 5 do
  out[#out + 1] = redis.call('LLEN', KEYS[q])
  local head = redis.call('LINDEX', KEYS[q], 0)
  local t = head and decode(head)
  if t and type(t[T_ENQUEUED]) == 'number' and (oldest == 0 or t[T_ENQUEUED] < oldest) then oldest = t[T_ENQUEUED] end
end
out[#out + 1] = oldest
out[#out + 1] = pause_in_force(now, stored_pause(PAUSED), NOT_PAUSED)
out[#out + 1] = redis.call('ZCARD', GRANTED)
out[#out + 1] = redis.call('LLEN', DLQ)
out[#out + 1] = redis.call('HGETALL', STATS)
out[#out + 1] = redis.call('HLEN', JOBS)
out[#out + 1] = redis.call('ZCARD', LEASE)
out[#out + 1] = rates
out[#out + 1] = lim_running(now)
out[#out + 1] = redis.call('ZCARD', SCHED)
local waiting, tenants = {}, {}
local kv = redis.call('HGETALL', FAIR)
local names = {['0'] = ''}
for i = 1, #kv, 2 do
  local id = string.match(kv[i], '^nm:(%d+)$')
  if id then names[id] = kv[i + 1] end
end
for i = 1, #kv, 2 do
  local id = string.match(kv[i], '^n%d:(%d+)$')
  local tn = id and names[id]
  if tn then
    if not waiting[tn] then waiting[tn] = 0; tenants[#tenants + 1] = tn end
    waiting[tn] = waiting[tn] + tonumber(kv[i + 1])
  end
end
local tl = {}
for _, tn in ipairs(tenants) do tl[#tl + 1] = tn; tl[#tl + 1] = waiting[tn] end
out[#out + 1] = tl
return out
