-- check.lua: would a request be granted now? Reads only; consumes nothing.
-- KEYS, ARGV 1-6: see limits.lua.
-- Reply: {allowed 0/1, remaining, retry after µs (PAUSED_FOREVER: paused with no end), reset after µs}
local now = now_us()
local p = paused(now)
local len = line_len()
local free = lim_free(now, false)
local allowed = p == NOT_PAUSED and len == 0 and free > 0
local retry = 0
if not allowed then
  if p == PAUSED_FOREVER then
    retry = PAUSED_FOREVER
  else
    local at = lim_slot(now, len + 1, free)
    if p ~= NOT_PAUSED then at = math.max(at, p) end
    retry = at - now
  end
end
local a = 0
if allowed then a = 1 end
return {a, free, retry, lim_reset_after(now)}
