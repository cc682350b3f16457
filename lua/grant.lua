-- grant.lua: the processor's step for one key. Refunds grants their remote owners never claimed,
-- takes back durable jobs whose lease lapsed (or whose retry is due) to the head of their line,
-- drops expired and corrupt tickets, then grants up to a batch of waiting tickets, highest
-- priority first and first come first served within one, as far as pause and limit allow (a
-- shadow limit allows everything: its grants are recorded, see shadow.lua).
-- A durable job is granted only by a node that runs its handler, to itself, under a lease,
-- and only while the node has a free worker; its turn holds up the line while another live
-- node runs its handler; one whose handler no live node runs is passed over.
-- The step runs in phases, each a local function named as its twin, a method of grantRun in
-- queue/memgrant.go: refund_stale, join_scheduled, reclaim_leases, pick_grants (which visits each ticket:
-- visit_ticket, visit_job, visit_request, and drops, grant_job or grant_request), charge_window,
-- next_visit.
-- KEYS: see limits.lua and jobs.lua (16). ARGV 1-6: see limits.lua.
-- ARGV: 7 this node's id  8 batch size  9 claim timeout µs  10 hold µs (how long to leave a line
--       held up by jobs before looking again)  11 lease µs  12 free workers  13 leases a job may lose
--       14 n, the number of dead nodes  15..14+n ids of nodes known dead (their tickets leave the
--       line, their unclaimed grants are refunded at once)  then handler names, each '+name' (run
--       here) or '=name' (run by another live node)
-- Reply: {paused 0/1, now µs, next µs (0: nothing to do, PAUSED_FOREVER: paused with no end),
--   {raw tickets granted to this node}, {ids of other nodes whose tickets were granted},
--   {job id, record, ...} granted to this node, busy 0/1 (a job for this node waits for a free
--   worker), {ids of jobs ended here that somebody waits for}}
local NODE, BATCH, CLAIM = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local HOLD, LEASE_US, MAX_LOST = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[13])
-- Bounds on one step's work (queue's maxDrops, maxSkips, maxRefunds, maxReclaims).
local MAX_DROPS, MAX_SKIPS, MAX_REFUNDS, MAX_RECLAIMS = 1000, 1000, 1000, 100

local dead, mine, others = {}, {}, {}
do -- ndead in a block of its own: not one of the script's 200 locals
  local ndead = tonumber(ARGV[14])
  for i = 15, 14 + ndead do dead[ARGV[i]] = true end
  for i = 15 + ndead, #ARGV do
    local h = ARGV[i]
    if string.sub(h, 1, 1) == '+' then mine[string.sub(h, 2)] = true else others[string.sub(h, 2)] = true end
  end
end

local now = now_us()
-- The step's running state, grantRun's fields: grants of cost 1 the window allows still (free;
-- limits.lua's FREE holds what each rate allows) and this node's free workers (slots); the n
-- ids granted and their costs; the cost of the ticket that did not fit (blocked, nil when
-- none); the reply's lists (this node's own tickets
-- granted, other owners to wake, jobs granted, jobs ended that somebody waits for) and the
-- owners listed already; tickets dropped unserved and jobs passed over. held: a job's turn keeps
-- tickets behind it waiting; busy: it waits for a worker of this node; halt: lower priorities
-- wait too.
local free, slots, n, ids, costs, blocked = 0, tonumber(ARGV[12]), 0, {}, {}, nil
local mine_t, owners, jobs, woken, owner_seen, mine_seen = {}, {}, {}, {}, {}, {}
local drops, skips, held, busy, halt = 0, 0, false, false, false
-- open: the key's limit is a shadow limit and no pause is in force: every ticket fits.
local open = false
-- sets: any of the key's sets of grants for other nodes, leases and scheduled jobs holds
-- anything (one call, where looking into each takes five, and most keys hold none).
local sets = false

-- refund_stale forgets this node's own grants older than twice the claim timeout, and gives
-- back the remote grants not claimed in time or whose owner is dead (or that are unreadable):
-- of the earliest MAX_REFUNDS grants, those past the claim timeout unless a node is dead.
-- Twin: grantRun.refundStale.
local function refund_stale()
  redis.call('ZREMRANGEBYSCORE', LOCAL, '-inf', I(now - 2 * CLAIM))
  if not sets then return end
  local stale
  if next(dead) then -- a node is dead
    stale = redis.call('ZRANGE', GRANTED, 0, MAX_REFUNDS - 1, 'WITHSCORES')
  else
    stale = redis.call('ZRANGEBYSCORE', GRANTED, '-inf', I(now - CLAIM), 'WITHSCORES', 'LIMIT', 0, MAX_REFUNDS)
  end
  for i = 1, #stale, 2 do
    local t = decode(stale[i])
    local at = tonumber(stale[i + 1])
    if at <= now - CLAIM or not t or dead[t[T_OWNER]] then
      redis.call('ZREM', GRANTED, stale[i])
      if t then lim_refund(now, t[T_ID], at, cost_of(t)) end
      count('refunded')
    end
  end
end

-- reclaim_leases takes back to the head of their line the durable jobs whose lease lapsed
-- (their node fell silent while running them) or whose retry is due: the MAX_RECLAIMS due
-- earliest. Twin: grantRun.reclaimLeases.
local function reclaim_leases()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASE, '-inf', I(now), 'LIMIT', 0, MAX_RECLAIMS)) do
    redis.call('ZREM', LEASE, id)
    local j = job_get(id)
    if j and j[J_STATE] == JOB_CANCELLING then
      -- Cancelled while it ran, and its node fell silent: it ends cancelled.
      if job_end(now, id, j, RESULT_CANCELLED, '') then woken[#woken + 1] = id end
    elseif j and j[J_STATE] == JOB_RUNNING then
      j[J_LOST] = j[J_LOST] + 1
      count('reclaimed')
      if j[J_LOST] > MAX_LOST then
        if job_dead(now, id, j, 'rateltd: lease lost ' .. j[J_LOST] .. ' times') then woken[#woken + 1] = id end
      else
        job_requeue(now, id, j)
      end
    elseif j then
      job_requeue(now, id, j)
    else
      local raw = redis.call('HGET', JOBS, id)
      if raw then
        dead_letter(raw) -- an undecodable record
        redis.call('HDEL', JOBS, id)
      end
    end
  end
end

-- join_scheduled moves the scheduled jobs whose time has come to the tail of their line, the
-- MAX_RECLAIMS due earliest, earliest first: a job scheduled earlier is ahead of one scheduled
-- later. Its time in line counts from now. Twin: grantRun.joinScheduled.
local function join_scheduled()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', SCHED, '-inf', I(now), 'LIMIT', 0, MAX_RECLAIMS)) do
    redis.call('ZREM', SCHED, id)
    local j = job_get(id)
    if j and j[J_STATE] == JOB_SCHEDULED then
      job_requeue(now, id, j, true)
    elseif not j then
      local raw = redis.call('HGET', JOBS, id)
      if raw then
        dead_letter(raw) -- an undecodable record
        redis.call('HDEL', JOBS, id)
      end
    end
  end
end

-- The lines' lengths by priority, as pick_grants read them and take changed them since; the
-- priority of the line being walked (walking); and how many entries taken from its head are
-- still in it (popped), taken out together by pop_taken before anything else reads or changes
-- the line. One table, not three locals: the script's main function may hold no more than 200.
local lens = {walking = 3, popped = 0}

local function pop_taken(line)
  if lens.popped == 1 then
    redis.call('LPOP', line)
  elseif lens.popped > 1 then
    redis.call('LPOP', line, lens.popped)
  end
  lens.popped = 0
end

-- take_grant counts a grant of cost c to id. Twin: grantRun.takeGrant.
local function take_grant(id, c)
  lim_take(c)
  n, free = n + 1, lim_least()
  if open then free = BATCH end
  ids[n], costs[n] = id, c
end

-- fits reports whether ticket t's cost fits what every rate allows still, and notes its cost
-- as blocked when it does not. Twin: grantRun.fits.
local function fits(t)
  if open or lim_fits(cost_of(t)) then return true end
  blocked = cost_of(t)
  return false
end

-- Takes the entry raw at position i of line out: ticket t (nil when corrupt), granted or not.
-- A readable ticket of no tenant at the head stays in the line until pop_taken (lens.popped).
local function take(line, i, raw, t, granted)
  lens[lens.walking] = lens[lens.walking] - 1
  if i == 0 and t and not t.TAG then
    lens.popped = lens.popped + 1
    return
  end
  pop_taken(line)
  if i == 0 then redis.call('LPOP', line) else redis.call('LREM', line, 1, raw) end
  line_left(lens.walking, t, granted)
end

-- drop takes the entry at position i of line, ticket t, out unserved, counted as reason; a
-- corrupt one goes to the dead-letter list. Twin: grantRun.drop.
local function drop(line, i, raw, reason, t)
  take(line, i, raw, t, false)
  if reason == 'corrupt' then dead_letter(raw) else count(reason) end
  drops = drops + 1
end

-- grant_job grants the job of ticket t, at position i of line, to this node under a lease.
-- Twin: grantRun.grantJob.
local function grant_job(line, i, raw, t)
  local id = t[T_ID]
  local j = job_get(id)
  if not j then
    drop(line, i, raw, 'corrupt', t) -- a job ticket without its record
    return
  end
  take(line, i, raw, t, true)
  j[J_RUNS], j[J_STATE], j[J_HOLDER] = j[J_RUNS] + 1, JOB_RUNNING, NODE
  -- Stored, leased and the TTLs extended by charge_window, for all the step's jobs at once.
  jobs[#jobs + 1] = id
  jobs[#jobs + 1] = cmsgpack.pack(j)
  slots = slots - 1
  take_grant(id, cost_of(t))
end

-- grant_request grants request ticket t, at position i of line, to its owner: at once when
-- the owner is this node, else in the granted set for the owner to claim. Twin:
-- grantRun.grantRequest.
local function grant_request(line, i, raw, t)
  take(line, i, raw, t, true)
  take_grant(t[T_ID], cost_of(t))
  local owner = t[T_OWNER]
  raw = t.RAW -- the ticket as its owner knows it
  if owner == NODE then
    mine_t[#mine_t + 1] = raw -- into the local grants with the others, by charge_window
    mine_seen[raw] = true
  else
    redis.call('ZADD', GRANTED, I(now), raw)
    if not owner_seen[owner] then owner_seen[owner] = true; owners[#owners + 1] = owner end
  end
end

-- visit_job deals with job ticket t at position i of line. Returns the position of the next
-- ticket, or nil when the walk of this line stops. Twin: grantRun.visitJob.
local function visit_job(line, i, raw, t)
  local h = t[T_HANDLER]
  if not mine[h] then
    held = true
    if others[h] or skips >= MAX_SKIPS then
      -- Its turn has come and another node will take it (or too many were passed over): the
      -- line waits.
      halt = true
      return nil
    end
    -- No live node runs its handler: it keeps its place, the others go by.
    skips = skips + 1
    return i + 1
  end
  if not fits(t) or n >= BATCH then return nil end
  if slots <= 0 then
    held, busy, halt = true, true, true
    return nil
  end
  grant_job(line, i, raw, t)
  return i
end

-- visit_request deals with request ticket t at position i of line; returns as visit_job does.
-- Twin: grantRun.visitRequest.
local function visit_request(line, i, raw, t)
  if dead[t[T_OWNER]] then
    drop(line, i, raw, 'abandoned', t)
  elseif not fits(t) or n >= BATCH then
    return nil
  elseif mine_seen[t.RAW] or redis.call('ZSCORE', LOCAL, t.RAW)
      or ((sets or #owners > 0) and redis.call('ZSCORE', GRANTED, t.RAW)) then
    -- Granted already: a second copy, queued by an admit that the Redis client sent again
    -- after a connection error had cut its reply. One request, one grant.
    drop(line, i, raw, 'duplicate', t)
  else
    grant_request(line, i, raw, t)
  end
  return i
end

-- visit_ticket deals with the entry raw at position i of line: drops it when corrupt or
-- expired, or evicts it when its cost is above what the limit can ever admit, else leaves it
-- to visit_job or visit_request; returns as they do. Twin: grantRun.visitTicket.
local function visit_ticket(line, i, raw)
  local t = decode(raw)
  if not t then
    drop(line, i, raw, 'corrupt')
  elseif t[T_DEADLINE] <= now then
    drop(line, i, raw, 'expired', t)
    if t[T_HANDLER] then
      local j = job_get(t[T_ID])
      if j and job_end(now, t[T_ID], j, RESULT_EXPIRED, '') then woken[#woken + 1] = t[T_ID] end
    end
  elseif not lim_could_fit(cost_of(t)) then
    -- Its cost is above what the limit, lowered since it was queued, can ever admit.
    drop(line, i, raw, 'evicted', t)
    if t[T_HANDLER] then
      local j = job_get(t[T_ID])
      if j and job_end(now, t[T_ID], j, RESULT_EVICTED, '') then woken[#woken + 1] = t[T_ID] end
    else
      mark_evicted(now, t)
    end
  elseif t[T_HANDLER] then
    return visit_job(line, i, raw, t)
  else
    return visit_request(line, i, raw, t)
  end
  return i
end

-- pick_grants walks the lines, highest priority first, each from its head, visiting tickets
-- until the batch and the window are spent (a line stops at the first ticket it could grant
-- but may not), a job halts the walk, or MAX_DROPS tickets were dropped. It reads a line in
-- chunks, as many tickets as it can use and one more (none of an empty line; no more once a
-- chunk came short: nothing joins a line during the walk). Twin: grantRun.pickGrants.
local function pick_grants()
  for q = 0, 3 do lens[q] = redis.call('LLEN', KEYS[2 + q]) end
  for q = 5, 2, -1 do
    local line = KEYS[q]
    lens.walking = q - 2
    local i = 0
    while i and drops < MAX_DROPS and lens[lens.walking] > 0 do
      local want = math.min(64, math.max(1, math.min(free, BATCH - n))) + 2
      local chunk = redis.call('LRANGE', line, i + lens.popped, i + lens.popped + want - 1)
      if #chunk == 0 then break end
      for _, raw in ipairs(chunk) do
        i = visit_ticket(line, i, raw)
        if not i or drops >= MAX_DROPS then break end
      end
      if #chunk < want then break end
    end
    pop_taken(line)
    if halt then break end
  end
end

-- zadd_every adds list[1], list[1 + step], ... to key at score, in one ZADD per 1,000 members
-- (unpack's bound); a lone member without the argument table, which costs a step granting one
-- ~2 %.
local function zadd_every(key, score, list, step)
  if #list == 1 then
    redis.call('ZADD', key, score, list[1])
    return
  end
  for first = 1, #list, 1000 * step do
    local args = {}
    for k = first, math.min(#list, first + 1000 * step - 1), step do
      args[#args + 1] = score
      args[#args + 1] = list[k]
    end
    redis.call('ZADD', key, unpack(args))
  end
end

-- charge_window records the grants in the window, keeps the grant sets for their claims, and
-- puts the jobs granted under their lease (one ZADD, the TTLs once). Twin:
-- grantRun.chargeWindow.
local function charge_window()
  if n == 0 then return end
  lim_record(now, ids, costs)
  count('granted', n)
  if #jobs > 0 then
    -- jobs holds id, record, id, record, ...
    for k = 1, #jobs, 1000 do redis.call('HSET', JOBS, unpack(jobs, k, math.min(#jobs, k + 999))) end
    zadd_every(LEASE, I(now + LEASE_US), jobs, 2)
    extend_ttl(LEASE, LEASE_US + 60000000)
    extend_ttl(JOBS, LEASE_US + 60000000)
  end
  if #owners > 0 then redis.call('PEXPIRE', GRANTED, ms(2 * CLAIM)) end
  if #mine_t > 0 then
    -- This node's own grants join its local grants.
    zadd_every(LOCAL, I(now), mine_t, 1)
    redis.call('PEXPIRE', LOCAL, ms(2 * CLAIM))
  end
end

-- next_visit is when to run the step on this key again, given the pause p in force: 0 when
-- nothing waits, else when a ticket may be granted (PAUSED_FOREVER: at no known time), and no
-- later than the first unclaimed grant or lease lapses or scheduled job is due. Twin: grantRun.nextVisit.
local function next_visit(p)
  local next = 0
  if lens[0] + lens[1] + lens[2] + lens[3] > 0 then
    if p ~= NOT_PAUSED then next = p
    elseif drops >= MAX_DROPS then next = now
    elseif blocked then next = lim_next(now, blocked)
    elseif free > 0 and held then next = now + HOLD
    elseif free > 0 then next = now
    else next = lim_next(now, 1) end
  end
  if not sets and #owners == 0 then return next end
  for _, z in ipairs({GRANTED, LEASE, SCHED}) do
    local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')[2]
    if oldest then
      local due = tonumber(oldest)
      if z == GRANTED then due = due + CLAIM end
      if next <= 0 or due < next then next = due end
    end
  end
  return next
end

sets = redis.call('EXISTS', GRANTED, LEASE, SCHED) > 0
refund_stale()
if sets then
  join_scheduled()
  reclaim_leases()
end
local p = paused(now)
if p == NOT_PAUSED then free = lim_free(now, true) else lim_none() end
open = SHADOW and p == NOT_PAUSED
if open then free = BATCH end
pick_grants()
charge_window()
return {p ~= NOT_PAUSED and 1 or 0, now, next_visit(p), mine_t, owners, jobs, busy and 1 or 0, woken}
