-- admit.lua: the fast path. Grants at once when the key is not paused, its line is empty and the
-- limit allows; otherwise queues the ticket (evicting one under DropOldest) or refuses it.
-- KEYS, ARGV 1-6: see lib.lua.
-- ARGV: 7 raw ticket  8 ticket id  9 priority (0-3)  10 deadline µs  11 max queue (-1: never queue)
--       12 overflow (0 reject, 1 drop oldest)
-- Reply: {code, now µs, remaining, earliest µs (0: paused with no end), line length before, evicted raw or ''}
--   code 1 granted, 2 queued, 3 full, 4 would exceed deadline.
local RAW, ID, PRIO, DEADLINE = ARGV[7], ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local MAXQ, OVERFLOW = tonumber(ARGV[11]), tonumber(ARGV[12])

local now = now_us()
-- The fast path in one call: no own pause and an empty line means none of these keys exists
-- (Redis deletes an emptied list; a pause that has ended has expired).
local quiet = redis.call('EXISTS', PAUSED, KEYS[2], KEYS[3], KEYS[4], KEYS[5]) == 0
    and (EXT_PAUSE == 0 or (EXT_PAUSE > 0 and EXT_PAUSE <= now))
local free = lim_free(now, true)
if quiet and free > 0 then
  lim_record(now, {ID}) -- 'admitted' is counted by the node, keeping this path short
  return {1, now, free - 1, 0, 0, ''}
end
local p = paused(now)
local len = line_len()

-- Under DropOldest, a full line gives up the oldest ticket of the lowest priority up to PRIO.
local drop = nil
if len >= MAXQ and OVERFLOW == 1 then
  for q = 0, PRIO do
    if redis.call('LLEN', KEYS[2 + q]) > 0 then drop = q; break end
  end
end

-- The earliest start: behind every waiting ticket of the same or a higher priority.
local ahead = 0
for q = PRIO, 3 do ahead = ahead + redis.call('LLEN', KEYS[2 + q]) end
if drop == PRIO then ahead = ahead - 1 end
local earliest = lim_slot(now, ahead + 1, free)
if p == 0 then earliest = 0 elseif p then earliest = math.max(earliest, p) end

if MAXQ == -1 then
  count('rejected')
  return {3, now, 0, earliest, len, ''}
end
if earliest ~= 0 and earliest > DEADLINE then
  count('rejected')
  return {4, now, 0, earliest, len, ''}
end

local evicted = ''
if len >= MAXQ then
  if drop then evicted = redis.call('LPOP', KEYS[2 + drop]) end
  if evicted == '' then
    count('rejected')
    return {3, now, 0, earliest, len, ''}
  end
  local t = decode(evicted)
  if t then
    mark_evicted(now, t)
    count('evicted')
  else
    dead_letter(evicted)
    evicted = ''
  end
end

redis.call('RPUSH', KEYS[2 + PRIO], RAW)
extend_ttl(KEYS[2 + PRIO], DEADLINE - now)
count('queued')
return {2, now, 0, earliest, len, evicted}
