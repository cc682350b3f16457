-- admit.lua: the second half of the admit script (see admit_fast.lua), and of enqueue.lua's:
-- the line. line_admit queues the ticket or refuses it, and returns the reply (admit_fast.lua's
-- header says what it holds; when queued, the reset after's place holds what follows the
-- ticket in its entry of a line served in fair shares, '' in any other). TENANT ('' none) and
-- WEIGHT are the ticket's tenant and its weight (see fair.lua).

-- ENQ_BATCH is what line_admit may keep from one job to the next of one enqueue_many call (set
-- by enqueue_many_end.lua; nil elsewhere): the pause in force (p), the lines' lengths (lens),
-- whether the line was found not fair (unfair, see fair.lua), the jobs queued, counted once
-- at the end (queued), and the tickets that join the tail of a line served first come first
-- served (tail[q]), pushed together by enq_push with the line's TTL extended once to the
-- latest of their deadlines (tail_ttl[q], µs from now). Whatever reads a line's entries comes
-- after enq_push.
local ENQ_BATCH = nil

local function enq_push(b)
  for q = 0, 3 do
    local raws = b.tail[q]
    if raws then
      for i = 1, #raws, 1000 do redis.call('RPUSH', KEYS[2 + q], unpack(raws, i, math.min(i + 999, #raws))) end
      extend_ttl(KEYS[2 + q], b.tail_ttl[q])
      b.tail[q], b.tail_ttl[q] = nil, nil
    end
  end
end

-- refused counts a refusal and returns its reply: code 3 (the line is full, or the key never
-- queues) or 4 (the ticket could not start by its deadline), with its earliest start and the
-- line's length.
local function refused(code, earliest, len)
  count('rejected')
  return {code, now, free, earliest, len, '', lim_reset_after(now), lim_which()}
end

local function line_admit()
local b = ENQ_BATCH
local p = b and b.p
if not p then
  p = paused(now)
  if b then b.p = p end
end
-- The lines' lengths, read once: nothing below changes a line before the ticket joins, but
-- the drop of a head up to PRIO, which the count ahead allows for. Kept up to date below for
-- the next job of an enqueue_many call.
local lens = b and b.lens
if not lens then
  lens = {[0] = redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[3]), redis.call('LLEN', KEYS[4]),
    redis.call('LLEN', KEYS[5])}
  if b then b.lens = lens end
end
local len = lens[0] + lens[1] + lens[2] + lens[3]
local tenant = nil
if TENANT ~= '' then tenant = TENANT end
-- Whether the line is fair, for a batch of no tenant: a line found not fair stays so through
-- it (only a tenant's ticket makes a line fair), so that is read once. A tenant's batch holds
-- no tail back: each of its tickets joins in fair shares.
local flag = nil
if b and not tenant then
  if b.unfair then
    flag = false
  elseif lens[PRIO] > 0 then
    flag = redis.call('HEXISTS', FAIR, 'v' .. PRIO) == 1
    b.unfair = not flag
  end
end
-- The fair shares, the costs ahead and a full line's drop read the line's entries.
if b and (flag or HAS_UNITS or (len >= MAXQ and OVERFLOW == 1)) then enq_push(b) end
local place = fair_place(PRIO, tenant, HEAD, lens[PRIO], flag)

-- Under DropOldest, a full line gives up the oldest request of the lowest priority up to PRIO
-- (the ticket at the head of its line); durable jobs are never dropped.
local drop, drop_cost = nil, 1
if len >= MAXQ and OVERFLOW == 1 then
  for q = 0, PRIO do
    local head = redis.call('LINDEX', KEYS[2 + q], 0)
    local t = head and decode(head)
    if head and not (t and t[T_HANDLER]) then
      drop = q
      if t then drop_cost = cost_of(t) end
      break
    end
  end
end

-- The earliest start: behind every waiting ticket of a higher priority, and of the same one
-- those before its place (all of them unless the line is fair or it goes to its head).
local pos = place[3]
local ahead = pos
for q = PRIO + 1, 3 do ahead = ahead + lens[q] end
if drop == PRIO and pos > 0 then ahead = ahead - 1 end
local units = nil
if HAS_UNITS then
  units = units_ahead(PRIO, pos)
  if drop == PRIO and pos > 0 then units = units - drop_cost end
end
local earliest = lim_slot(now, ahead + 1, units, COST)
if SHADOW then earliest = now end -- the limit holds nothing back (shadow.lua); a pause does
if p == PAUSED_FOREVER then earliest = PAUSED_FOREVER elseif p ~= NOT_PAUSED then earliest = math.max(earliest, p) end

if MAXQ == -1 or (tenant and MAXQT > 0 and tenant_waiting(tenant) >= MAXQT) then
  return refused(3, earliest, len)
end
if earliest ~= PAUSED_FOREVER and earliest > DEADLINE then
  return refused(4, earliest, len)
end

local evicted = ''
if len >= MAXQ then
  if drop then
    evicted = redis.call('LPOP', KEYS[2 + drop])
    if evicted then lens[drop] = lens[drop] - 1 end
  end
  if evicted == '' then
    return refused(3, earliest, len)
  end
  local t = decode(evicted)
  if t then
    line_left(drop, t, false)
    evicted = t.RAW
    mark_evicted(now, t)
    count('evicted')
  else
    dead_letter(evicted)
    evicted = ''
  end
end

local suffix = ''
if b and not place[1] and not HEAD then
  local tail = b.tail[PRIO]
  if not tail then
    tail = {}
    b.tail[PRIO], b.tail_ttl[PRIO] = tail, 0
  end
  tail[#tail + 1] = RAW
  b.tail_ttl[PRIO] = math.max(b.tail_ttl[PRIO], DEADLINE - now)
else
  suffix = line_push(PRIO, RAW, tenant, WEIGHT, COST, HEAD, place, DEADLINE - now, drop == PRIO)
end
-- A fair line's entry may take the ticket without growing: its lengths are read again.
if place[1] then
  if b then b.lens = nil end
else
  lens[PRIO] = lens[PRIO] + 1
end
if b then b.queued = b.queued + 1 else count('queued') end
-- In place of the reset after (not read when queued): what follows the ticket in its entry of
-- a fair line ('' in any other), for a cancel to find it by.
return {2, now, free, earliest, len, evicted, suffix, lim_which()}
end
