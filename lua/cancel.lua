-- cancel.lua: the caller gave up. Takes the ticket out of its line — every copy of it: an
-- admit the Redis client sent twice queues two —, and gives back any grant it holds that was
-- neither claimed nor delivered (in the granted set, or among the local grants: one whose
-- reply was lost). Twin: memKey.cancel.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 raw ticket  8 ticket id  9 priority (0-3)  10 what follows it in its entry of a line
--       served in fair shares, as its admit answered ('' or absent: not known; a fair line is
--       then searched)
-- Reply: 1 removed from the line, 2 grant refunded (and any copy removed), 3 absent.
local RAW, ID, PRIO, SUFFIX = ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10] or ''
local removed = 0
if SUFFIX ~= '' then
  -- What follows it in its entry of a fair line, as its admit answered.
  local e = RAW .. SUFFIX
  removed = redis.call('LREM', KEYS[2 + PRIO], 0, e)
  if removed > 0 then line_left(PRIO, decode(e), false) end
end
if removed == 0 then removed = redis.call('LREM', KEYS[2 + PRIO], 0, RAW) end
if removed == 0 and redis.call('HEXISTS', FAIR, 'v' .. PRIO) == 1 then
  -- A line served in fair shares holds the ticket with its tag after it (fair.lua).
  local line = KEYS[2 + PRIO]
  for _, e in ipairs(redis.call('LRANGE', line, 0, -1)) do
    if #e > #RAW and string.sub(e, 1, #RAW) == RAW then
      local t = decode(e)
      if t and t.RAW == RAW then
        removed = removed + redis.call('LREM', line, 0, e)
        line_left(PRIO, t, false)
      end
    end
  end
end
local refunded = 0
for _, z in ipairs({GRANTED, LOCAL}) do
  local at = redis.call('ZSCORE', z, RAW)
  if at then
    redis.call('ZREM', z, RAW)
    local t = decode(RAW)
    lim_refund(now_us(), ID, tonumber(at), t and cost_of(t) or 1)
    refunded = refunded + 1
  end
end
if removed + refunded > 0 then count('cancelled') end
if refunded > 0 then
  count('refunded', refunded)
  return 2
end
if removed > 0 then return 1 end
redis.call('ZREM', EVICTED, ID)
return 3
