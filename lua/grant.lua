-- grant.lua: the processor's step for one key. Refunds grants their remote owners never claimed,
-- takes back durable jobs whose lease lapsed (or whose retry is due) to the head of their line,
-- drops expired and corrupt tickets, then grants up to a batch of waiting tickets, highest
-- priority first and first come first served within one, as far as pause and limit allow.
-- A durable job is granted only by a node that runs its handler, to itself, under a lease,
-- and only while the node has a free worker; its turn holds up the line while another live
-- node runs its handler; one whose handler no live node runs is passed over.
-- KEYS: see limits.lua and jobs.lua (16). ARGV 1-6: see limits.lua.
-- ARGV: 7 this node's id  8 batch size  9 claim timeout µs  10 hold µs (how long to leave a line
--       held up by jobs before looking again)  11 lease µs  12 free workers  13 leases a job may lose
--       14 n, the number of dead nodes  15..14+n ids of nodes known dead (their tickets leave the
--       line, their unclaimed grants are refunded at once)  then handler names, each '+name' (run
--       here) or '=name' (run by another live node)
-- Reply: {paused 0/1, now µs, next µs (0: nothing to do, PAUSED_FOREVER: paused with no end), {raw tickets
--   granted to this node}, {ids of other nodes whose tickets were granted}, {job id, record, ...}
--   granted to this node, busy 0/1 (a job for this node waits for a free worker), {ids of jobs
--   ended here that somebody waits for}}
local NODE, BATCH, CLAIM = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local HOLD, LEASE_US, SLOTS, MAX_LOST = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local MAX_DROPS, MAX_SKIPS = 1000, 1000

local dead, mine, others = {}, {}, {}
local any_dead = false
local ndead = tonumber(ARGV[14])
for i = 15, 14 + ndead do dead[ARGV[i]] = true; any_dead = true end
for i = 15 + ndead, #ARGV do
  local h = ARGV[i]
  if string.sub(h, 1, 1) == '+' then mine[string.sub(h, 2)] = true else others[string.sub(h, 2)] = true end
end

local now = now_us()
local woken = {}
redis.call('ZREMRANGEBYSCORE', LOCAL, '-inf', I(now - 2 * CLAIM))
local stale
if any_dead then
  stale = redis.call('ZRANGE', GRANTED, 0, 999, 'WITHSCORES')
else
  stale = redis.call('ZRANGEBYSCORE', GRANTED, '-inf', I(now - CLAIM), 'WITHSCORES', 'LIMIT', 0, 1000)
end
for i = 1, #stale, 2 do
  local t = decode(stale[i])
  local at = tonumber(stale[i + 1])
  if at <= now - CLAIM or not t or dead[t[T_OWNER]] then
    redis.call('ZREM', GRANTED, stale[i])
    if t then lim_refund(now, t[T_ID], at) end
    count('refunded')
  end
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASE, '-inf', I(now), 'LIMIT', 0, 100)) do
  redis.call('ZREM', LEASE, id)
  local j = job_get(id)
  if j and j[J_STATE] == JOB_RUNNING then
    -- Its node fell silent while running it.
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

-- Takes the ticket at position i of line out.
local function take(line, i, raw)
  if i == 0 then redis.call('LPOP', line) else redis.call('LREM', line, 1, raw) end
end

local p = paused(now)
local free = 0
if p == NOT_PAUSED then free = lim_free(now, true) end
local mine_t, owners, seen, ids, jobs = {}, {}, {}, {}, {}
local n, drops, skips = 0, 0, 0
-- held: a job's turn keeps tickets behind it waiting; busy: it waits for a worker of this node;
-- halt: lower priorities wait too.
local held, busy, halt = false, false, false
for q = 5, 2, -1 do
  local line = KEYS[q]
  local i = 0
  local stop = false
  while not stop and drops < MAX_DROPS do
    -- The tickets from position i on, as many as this step can use (and one more).
    local chunk = redis.call('LRANGE', line, i, i + math.min(64, math.max(1, math.min(free, BATCH - n)) + 1))
    if #chunk == 0 then break end
    for _, raw in ipairs(chunk) do
      local t = decode(raw)
      if not t then
        take(line, i, raw)
        dead_letter(raw)
        drops = drops + 1
      elseif t[T_DEADLINE] <= now then
        take(line, i, raw)
        count('expired')
        drops = drops + 1
        if t[T_HANDLER] then
          local j = job_get(t[T_ID])
          if j and job_end(now, t[T_ID], j, RESULT_EXPIRED, '') then woken[#woken + 1] = t[T_ID] end
        end
      elseif t[T_HANDLER] and not mine[t[T_HANDLER]] then
        held = true
        if others[t[T_HANDLER]] or skips >= MAX_SKIPS then
          -- Its turn has come and another node will take it (or too many were passed over):
          -- the line waits.
          halt = true
        else
          -- No live node runs its handler: it keeps its place, the others go by.
          skips = skips + 1
          i = i + 1
        end
      elseif not t[T_HANDLER] and dead[t[T_OWNER]] then
        take(line, i, raw)
        count('abandoned')
        drops = drops + 1
      elseif free <= 0 or n >= BATCH then
        stop = true
      elseif not t[T_HANDLER] and (redis.call('ZSCORE', LOCAL, raw) or redis.call('ZSCORE', GRANTED, raw)) then
        -- Granted already: a second copy, queued by an admit that the Redis client sent again
        -- after a connection error had cut its reply. One request, one grant.
        take(line, i, raw)
        count('duplicate')
        drops = drops + 1
      elseif t[T_HANDLER] and SLOTS <= 0 then
        held, busy, halt = true, true, true
      elseif t[T_HANDLER] then
        take(line, i, raw)
        local j = job_get(t[T_ID])
        if j then
          j[J_RUNS], j[J_STATE], j[J_HOLDER] = j[J_RUNS] + 1, JOB_RUNNING, NODE
          redis.call('ZADD', LEASE, I(now + LEASE_US), t[T_ID])
          extend_ttl(LEASE, LEASE_US + 60000000)
          jobs[#jobs + 1] = t[T_ID]
          jobs[#jobs + 1] = job_put(t[T_ID], j, LEASE_US)
          SLOTS = SLOTS - 1
          n = n + 1
          free = free - 1
          ids[n] = t[T_ID]
        else
          dead_letter(raw) -- a job ticket without its record
          drops = drops + 1
        end
      else
        take(line, i, raw)
        n = n + 1
        free = free - 1
        ids[n] = t[T_ID]
        if t[T_OWNER] == NODE then
          mine_t[#mine_t + 1] = raw
          redis.call('ZADD', LOCAL, I(now), raw)
        else
          redis.call('ZADD', GRANTED, I(now), raw)
          if not seen[t[T_OWNER]] then seen[t[T_OWNER]] = true; owners[#owners + 1] = t[T_OWNER] end
        end
      end
      if halt then stop = true end
      if stop or drops >= MAX_DROPS then break end
    end
  end
  if halt then break end
end

if n > 0 then
  lim_record(now, ids)
  count('granted', n)
  if #owners > 0 then redis.call('PEXPIRE', GRANTED, ms(2 * CLAIM)) end
  if #mine_t > 0 then redis.call('PEXPIRE', LOCAL, ms(2 * CLAIM)) end
end

local next = 0
if line_len() > 0 then
  if p ~= NOT_PAUSED then next = p
  elseif drops >= MAX_DROPS then next = now
  elseif free > 0 and held then next = now + HOLD
  elseif free > 0 then next = now
  else next = lim_slot(now, 1, 0) end
end
for _, z in ipairs({GRANTED, LEASE}) do
  local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')[2]
  if oldest then
    local due = tonumber(oldest)
    if z == GRANTED then due = due + CLAIM end
    if next <= 0 or due < next then next = due end
  end
end
local pz, hz = 0, 0
if p ~= NOT_PAUSED then pz = 1 end
if busy then hz = 1 end
return {pz, now, next, mine_t, owners, jobs, hz, woken}
