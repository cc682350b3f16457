-- admit_fast.lua + admit.lua: the fast path, then the line. Grants at once when the key is not
-- paused, its line is empty and the limit allows (a shadow limit's key: when not paused, see
-- shadow.lua); otherwise queues the ticket (evicting one under
-- DropOldest) or refuses it. The script is limits.lua, pause.lua, quiet.lua, shadow.lua, this file, line.lua
-- and admit.lua: a request granted at once returns before the line's helpers are even defined.
-- admit_many.lua admits several tickets, of several keys, in one call.
-- KEYS, ARGV 1-6: see limits.lua.
-- ARGV: 7 raw ticket  8 ticket id  9 priority (0-3)  10 deadline µs  11 max queue (-1: never queue)
--       12 overflow (0 reject, 1 drop oldest)  13 head (1: a retried request, queued at the head
--       of its priority's line)  14 cost (see limits.lua; absent: 1)  15 tenant ('' or absent:
--       none; see fair.lua)  16 its weight (absent: 1)
-- Reply: {code, now µs, remaining, earliest µs (PAUSED_FOREVER: paused with no end), line length
--        before, evicted raw or '', reset after µs, which rate}
--   code 1 granted, 2 queued, 3 full, 4 would exceed deadline. remaining: granted, what the
--   tightest rate may admit still; else how many of cost 1 the window alone lets start (the line
--   or a pause holds them). reset after: how long until the tightest rate's window is entirely
--   free again (granted: with this grant); 0 when queued, which does not read it. which rate:
--   the one remaining and reset after are of (1-based; 0: none, the concurrency cap's).
--   A grant on a shadow key adds what the limit would have done (shadow.lua's SHADOW_*) and
--   the would-be wait, µs.
-- Sent lean (a lone admit that may: queue's admitLone and mayLean):
--   KEYS the first seven of limits.lua's eleven (to paused) and those after the eleven; ARGV
--   1-6, then 7 ticket id, 8 cost. It only grants: reply {1, now µs, remaining, reset after
--   µs, which rate}, or {0} with nothing written when it does not grant (its sender admits
--   the ticket again in full). Not for a shadow limit, whose grants count in stats.
-- The arguments only the line reads are read once the fast path has not granted (each
-- tonumber of a string costs as much as a small Redis command).
local RAW, ID, PRIO, DEADLINE = ARGV[7], ARGV[8], nil, nil
local MAXQ, OVERFLOW, HEAD = nil, nil, nil
local COST = tonumber(ARGV[14]) or 1
local TENANT, WEIGHT = ARGV[15] or '', tonumber(ARGV[16]) or 1
if #ARGV == 8 then -- sent lean: no raw ticket (RAW nil), and no stats, dead letters, evictions or fair state
  if SHADOW then error('a shadow limit sent lean') end
  RAW, ID, COST = nil, ARGV[7], tonumber(ARGV[8])
  STATS, DLQ, EVICTED, FAIR = nil, nil, nil, nil
end

local now = now_us()
local free = lim_free(now, true)
if SHADOW and not shadow_paused(now) then
  local reset, verdict, wait = shadow_grant(now, ID, COST, tonumber(ARGV[10]), tonumber(ARGV[11]))
  return {1, now, math.max(0, lim_remaining()), 0, 0, '', reset, lim_which(), verdict, wait}
end
if lim_fits(COST) and quiet(now) then
  lim_take(COST)
  local reset = lim_record(now, {ID}, COST ~= 1 and {COST} or nil) -- 'admitted' is counted by the node, keeping this path short
  if not RAW then return {1, now, lim_remaining(), reset, lim_which()} end
  return {1, now, lim_remaining(), 0, 0, '', reset, lim_which()}
end
if not RAW then return {0} end
PRIO, DEADLINE = tonumber(ARGV[9]), tonumber(ARGV[10])
MAXQ, OVERFLOW, HEAD = tonumber(ARGV[11]), tonumber(ARGV[12]), ARGV[13] == '1'
