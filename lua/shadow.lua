-- shadow.lua: follows quiet.lua in the admit scripts. A shadow limit (ARGV 1's shadow, see
-- limits.lua) is watched, not enforced: a request on its key is granted at once, whatever the
-- window and the line hold, unless a pause is in force (a pause binds, shadow or not). The grant
-- is recorded in the windows (and the concurrency cap's run set) as any grant is, so that they
-- hold the real traffic, and what the limit would have done is counted in the key's stats:
--   shadow_allowed      it fit (lim_fits) before it was recorded
--   shadow_queued       it did not fit and would have waited: shadow_wait_us adds up, and
--                       shadow_wait_max_us keeps the largest of, the wait until the earliest
--                       start the windows allowed it (lim_slot for the head of an empty line,
--                       as the fail-fast estimate computes it)
--   shadow_refused      it did not fit and would have been refused: the key never queues
--                       (max queue -1), or that earliest start is past its deadline
-- Twin: memKey.shadow.

-- Whether a pause is in force on the key (its own, its group's or everything's).
local function shadow_paused(now)
  return redis.call('EXISTS', PAUSED) == 1 or pause_in_force(now, NOT_PAUSED, EXT_PAUSE) ~= NOT_PAUSED
end

local function shadow_count(name, n)
  redis.call('HINCRBY', STATS, name, I(n))
end

-- What the limit would have done with a request on a shadow key (queue.ShadowVerdict).
local SHADOW_ALLOWED, SHADOW_QUEUED, SHADOW_REFUSED = 1, 2, 3

-- Grants id, of cost c and deadline µs, at now on a shadow key, with FREE and CFREE read by
-- lim_free at now; counts what the limit would have done, with max queue maxq. Returns how
-- long until the tightest rate's window is entirely free again, µs, what the limit would have
-- done (SHADOW_*) and the would-be wait, µs (queued, or refused for its deadline).
local function shadow_grant(now, id, c, deadline, maxq)
  local verdict, wait = SHADOW_ALLOWED, 0
  if lim_fits(c) then
    shadow_count('shadow_allowed', 1)
  else
    wait = lim_slot(now, 1, 0, c) - now
    if maxq == -1 or now + wait > deadline then
      verdict = SHADOW_REFUSED
      shadow_count('shadow_refused', 1)
    else
      verdict = SHADOW_QUEUED
      shadow_count('shadow_queued', 1)
      shadow_count('shadow_wait_us', wait)
      if wait > (tonumber(redis.call('HGET', STATS, 'shadow_wait_max_us')) or 0) then
        redis.call('HSET', STATS, 'shadow_wait_max_us', I(wait))
      end
    end
  end
  redis.call('PEXPIRE', STATS, STATS_TTL)
  lim_take(c)
  return lim_record(now, {id}, {c}), verdict, wait
end
