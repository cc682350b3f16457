-- refund.lua: gives back to the window a grant that will not run (its caller left).
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 ticket id  8 granted at µs  9 raw ticket, or '' for a grant already claimed: a local
--       grant is given back only if it is still in the local grants (cancel may have given it
--       back first)  10 (optional) '1': a grant on arrival whose answer came after its caller
--       left, which no node counted as admitted: it is counted here, with its refund
--       11 (optional) the grant's cost (absent: 1)
-- Reply: 1 given back, 0 given back before.
local RAW = ARGV[9]
if RAW ~= '' and redis.call('ZREM', LOCAL, RAW) == 0 then return 0 end
lim_refund(now_us(), ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[11]) or 1)
count('refunded')
if ARGV[10] == '1' then count('admitted') end
return 1
