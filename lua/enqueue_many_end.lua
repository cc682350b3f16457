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
enq_push(ENQ_BATCH)
local recs = ENQ_BATCH.records
for i = 1, #recs, 1000 do redis.call('HSET', JOBS, unpack(recs, i, math.min(i + 999, #recs))) end
if ENQ_BATCH.queued > 0 then count('queued', ENQ_BATCH.queued) end
if ENQ_BATCH.ttl > 0 then extend_ttl(JOBS, ENQ_BATCH.ttl) end
return replies
