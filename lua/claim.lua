-- claim.lua: a node takes the grants made for its waiting tickets: by other nodes' processors
-- (the granted set), or by its own whose reply it never read (the local grants). A grant taken
-- from the granted set moves to the local grants, as if the node's own processor had made it:
-- a claim whose reply is lost can be made again, and the grant is given back once (refund.lua,
-- cancel.lua) if its caller has left.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 how long the local grants are kept at least once a claim adds to them, ms  8.. pairs of (ticket id, raw ticket), all owned
--       by the calling node.
-- Reply: a pair per ticket: {status, granted at µs}; status 0 still waiting, 1 claimed, 2 evicted.
local out = {}
local moved = false
for i = 8, #ARGV, 2 do
  local id, raw = ARGV[i], ARGV[i + 1]
  local at = redis.call('ZSCORE', GRANTED, raw)
  if at then
    redis.call('ZREM', GRANTED, raw)
    redis.call('ZADD', LOCAL, at, raw)
    moved = true
  else
    at = redis.call('ZSCORE', LOCAL, raw)
  end
  if at then
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
if moved and redis.call('PTTL', LOCAL) < tonumber(ARGV[7]) then redis.call('PEXPIRE', LOCAL, ARGV[7]) end
return out
