-- cancel.lua: the caller gave up. Removes the ticket from its line, or, when it was already
-- granted and not yet claimed or delivered, refunds the grant.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 raw ticket  8 ticket id  9 priority (0-3)
-- Reply: 1 removed from the line, 2 grant refunded, 3 absent.
local RAW, ID, PRIO = ARGV[7], ARGV[8], tonumber(ARGV[9])
if redis.call('LREM', KEYS[2 + PRIO], 1, RAW) == 1 then
  count('cancelled')
  return 1
end
for _, z in ipairs({GRANTED, LOCAL}) do
  local at = redis.call('ZSCORE', z, RAW)
  if at then
    redis.call('ZREM', z, RAW)
    lim_refund(now_us(), ID, tonumber(at))
    count('cancelled')
    count('refunded')
    return 2
  end
end
redis.call('ZREM', EVICTED, ID)
return 3
