-- enqueue_many_end.lua: the end of enqueue_many.lua.
local which = lim_which()
local replies = {now, free, which}
local run_at = tonumber(ARGV[JOBS_END + 1]) or 0
-- What the jobs' enqueues do once for all: the pause read, the lines' lengths read, whether the
-- line is fair, the check for jobs of the same ids (seen: the ids waiting, running, with their
-- result kept, or queued by this call), the pushes to a line's tail, the records stored (ids
-- and records, in pairs), the count of jobs queued and the records' TTL (the latest deadline's).
ENQ_BATCH = {queued = 0, ttl = 0, seen = {}, records = {}, tail = {}, tail_ttl = {}}
local ids = {}
for i = 13, JOBS_END, 4 do ids[#ids + 1] = ARGV[i] end
for from = 1, #ids, 1000 do
  local to = math.min(from + 999, #ids)
  local kept = redis.call('ZMSCORE', REXP, unpack(ids, from, to))
  local held = redis.call('HMGET', JOBS, unpack(ids, from, to))
  for j = 1, to - from + 1 do
    if held[j] or (kept[j] and tonumber(kept[j]) > now) then ENQ_BATCH.seen[ids[from + j - 1]] = true end
  end
end
-- A plain batch, the usual one (to join the line now, of cost 1, no tenant, on a key that is
-- not paused, whose rates count no units, whose line is served first come first served and has
-- room for every job), is decided here, each job as enqueue_job would decide it and answered as
-- below, without enqueue_job's per-job generality; its writes are ENQ_BATCH's, made after. The
-- earliest start is worked out for each job only when the last one's is not now. Any other
-- batch takes the general way. Reports whether the batch was plain.
local function enq_plain()
  if run_at ~= 0 or TENANT ~= '' or COST ~= 1 or SHADOW or HAS_UNITS or MAXQ < 0 then return false end
  if paused(now) ~= NOT_PAUSED then return false end
  local lens = {[0] = redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[3]), redis.call('LLEN', KEYS[4]),
    redis.call('LLEN', KEYS[5])}
  local len = lens[0] + lens[1] + lens[2] + lens[3]
  -- A line with its fair flag set is served in fair shares once it holds a ticket (fair.lua).
  if len + #ids > MAXQ or redis.call('HEXISTS', FAIR, 'v' .. PRIO) == 1 then return false end
  local ahead = len -- a job's place: behind every waiting ticket of its priority and above
  for q = 0, PRIO - 1 do ahead = ahead - lens[q] end
  local all_now = lim_slot(now, ahead + #ids, nil, 1) <= now
  local b, tail, tail_ttl = ENQ_BATCH, {}, 0
  for i = 12, JOBS_END, 4 do
    local id, deadline, n = ARGV[i + 1], tonumber(ARGV[i + 3]), #replies
    if b.seen[id] then
      replies[n + 1], replies[n + 2] = duplicate(), 0
    else
      local earliest = all_now and now or lim_slot(now, ahead + 1, nil, 1)
      if earliest > deadline then
        replies[n + 1], replies[n + 2] = refused(4, earliest, len), 0
        if not EVERY then break end
      else
        b.seen[id] = true
        tail[#tail + 1] = ARGV[i]
        b.records[#b.records + 1], b.records[#b.records + 2] = id, ARGV[i + 2]
        replies[n + 1], replies[n + 2] = earliest, len
        ahead, len, b.queued = ahead + 1, len + 1, b.queued + 1
        tail_ttl = math.max(tail_ttl, deadline - now)
        b.ttl = math.max(b.ttl, deadline - now + 60000000)
      end
    end
  end
  if #tail > 0 then b.tail[PRIO], b.tail_ttl[PRIO] = tail, tail_ttl end
  return true
end
if not enq_plain() then
  for i = 12, JOBS_END, 4 do
    RAW, ID, DEADLINE = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3])
    -- A µs apart, so that the jobs join their line in the order given.
    local reply = enqueue_job(ARGV[i + 2], run_at > 0 and run_at + (i - 12) / 4 or 0)
    local n = #replies
    if reply[1] == 2 and reply[6] == '' and reply[7] == '' and reply[3] == free and reply[8] == which then
      replies[n + 1], replies[n + 2] = reply[4], reply[5]
    else
      replies[n + 1], replies[n + 2] = reply, 0
    end
    if not EVERY and (reply[1] == 3 or reply[1] == 4) then break end
  end
end
enq_push(ENQ_BATCH)
local recs = ENQ_BATCH.records
for i = 1, #recs, 1000 do redis.call('HSET', JOBS, unpack(recs, i, math.min(i + 999, #recs))) end
if ENQ_BATCH.queued > 0 then count('queued', ENQ_BATCH.queued) end
if ENQ_BATCH.ttl > 0 then extend_ttl(JOBS, ENQ_BATCH.ttl) end
return replies
