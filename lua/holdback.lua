-- holdback.lua: an upstream said it has REMAINING left of the budget that rate RATE stands for,
-- whole again in RESET µs. Where the rate would admit more, the difference is taken now, to
-- lapse with the upstream's reset: in a sliding log as entries timed to leave the window then
-- (never later than a window from now), in a fixed window as counted in the current one, in
-- GCRA as emission intervals. Nothing is ever given back here: a key is never raised above its
-- limit. Twin: memRates.holdBack.
-- KEYS, ARGV 1-6: see limits.lua.
-- ARGV: 7 rate (0-based)  8 remaining  9 reset µs
-- Reply: what was taken.
local now = now_us()
local i, remaining, reset = tonumber(ARGV[7]) + 1, tonumber(ARGV[8]), tonumber(ARGV[9])
if i > NR then return 0 end
local d = math.min(rate_free(i, now, true) - remaining, R_MAX[i])
if d <= 0 then return 0 end
lim_hold(i, now, d, reset)
count('held_back', d)
return d
