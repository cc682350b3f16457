-- pause.lua: what a pause is, for every script that reads one (the per-key scripts, after
-- limits.lua, and pause_until.lua). A pause is NOT_PAUSED, PAUSED_FOREVER or the µs of server
-- time it lasts until — in a key's paused string, in ARGV 6 of the per-key scripts (the pause
-- of the key's group or of everything) and in replies — as queue's NotPaused and PausedForever.
local NOT_PAUSED, PAUSED_FOREVER = 0, -1

-- The pause stored at key (a key's own pause). A key paused with no end by an earlier version
-- holds 0, which no pause with an end can be; a value that is no number reads as a pause with
-- no end too, the safe reading of an operator's pause (Resume deletes it).
local function stored_pause(key)
  local raw = redis.call('GET', key)
  if not raw then return NOT_PAUSED end
  local v = tonumber(raw)
  if not v or v == 0 then return PAUSED_FOREVER end
  return v
end

-- The pause in force at now of two pauses: PAUSED_FOREVER if either is, else the later end if
-- it is after now, else NOT_PAUSED. The one rule of precedence between a key's own pause, its
-- group's and everything's; its Go twin is queue.PauseInForce.
local function pause_in_force(now, a, b)
  if a == PAUSED_FOREVER or b == PAUSED_FOREVER then return PAUSED_FOREVER end
  local last = math.max(a, b)
  if last > now then return last end
  return NOT_PAUSED
end
