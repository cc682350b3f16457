-- check.lua: would a request be granted now? Reads only; consumes nothing.
-- KEYS, ARGV 1-6: see limits.lua.
-- ARGV: 7 cost (absent: 1)
-- Reply: {allowed 0/1, remaining, retry after µs (PAUSED_FOREVER: paused with no end), reset after µs,
--   which rate}
--   remaining and reset after are the tightest rate's (see limits.lua), which rate (1-based; 0:
--   the concurrency cap's)
local COST = tonumber(ARGV[7]) or 1
local now = now_us()
local p = paused(now)
local len = line_len()
lim_free(now, false)
-- A shadow limit holds nothing back but a pause (shadow.lua).
local allowed = p == NOT_PAUSED and (SHADOW or (len == 0 and lim_fits(COST)))
local retry = 0
if not allowed then
  if p == PAUSED_FOREVER then
    retry = PAUSED_FOREVER
  else
    local units = nil
    if HAS_UNITS then units = units_ahead(0, redis.call('LLEN', KEYS[2])) end
    local at = lim_slot(now, len + 1, units, COST)
    if p ~= NOT_PAUSED then at = math.max(at, p) end
    retry = at - now
  end
end
local a = 0
if allowed then a = 1 end
return {a, lim_remaining(), retry, lim_reset_after(now), lim_which()}
