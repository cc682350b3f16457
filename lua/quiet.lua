-- quiet.lua: follows pause.lua in the admit scripts. A key is quiet when only its limit may hold
-- a newcomer back: no pause of its own or from outside, and nobody waits in its line (G2, G7).
local function quiet(now)
  -- One call: none of these keys exists (Redis deletes an emptied list; a pause that has ended
  -- has expired).
  return redis.call('EXISTS', PAUSED, KEYS[2], KEYS[3], KEYS[4], KEYS[5]) == 0
      and pause_in_force(now, NOT_PAUSED, EXT_PAUSE) == NOT_PAUSED
end
