-- claim.lua: a node takes the grants made for its waiting tickets: by other nodes' processors
-- (the granted set), or by its own whose reply it never read (the local grants).
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7.. pairs of (ticket id, raw ticket), all owned by the calling node.
-- Reply: a pair per ticket: {status, granted at µs}; status 0 still waiting, 1 claimed, 2 evicted.
local out = {}
for i = 7, #ARGV, 2 do
  local id, raw = ARGV[i], ARGV[i + 1]
  local at = redis.call('ZSCORE', GRANTED, raw)
  local from = GRANTED
  if not at then at, from = redis.call('ZSCORE', LOCAL, raw), LOCAL end
  if at then
    redis.call('ZREM', from, raw)
    out[#out + 1] = 1
    out[#out + 1] = tonumber(at)
  elseif redis.call('ZREM', EVICTED, id) == 1 then
    out[#out + 1] = 2
    out[#out + 1] = 0
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
