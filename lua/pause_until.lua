-- pause_until.lua: pauses a key until a time, unless it is already paused as long or longer
-- (a pause with no end, or a later one, stays). Used when the upstream says "retry after".
-- The script is pause.lua and this file. Twin: Memory.ExtendPause.
-- KEYS: 1 the key's paused string (see pause.lua)
-- ARGV: 1 until µs  2 until ms (for PXAT)
-- Reply: 1 paused until then, 0 already paused as long.
local cur = stored_pause(KEYS[1])
if cur == PAUSED_FOREVER or cur >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
