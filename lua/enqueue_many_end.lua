-- enqueue_many_end.lua: the end of enqueue_many.lua.
local replies = {}
local run_at = tonumber(ARGV[JOBS_END + 1]) or 0
-- What the jobs' enqueues do once for all: the pause read, the lines' lengths read, the count
-- of jobs queued and the records' TTL (the latest deadline's).
ENQ_BATCH = {queued = 0, ttl = 0}
for i = 12, JOBS_END, 4 do
  RAW, ID, DEADLINE = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3])
  -- A µs apart, so that the jobs join their line in the order given.
  local reply = enqueue_job(ARGV[i + 2], run_at > 0 and run_at + (i - 12) / 4 or 0)
  replies[#replies + 1] = reply
  if not EVERY and (reply[1] == 3 or reply[1] == 4) then break end
end
if ENQ_BATCH.queued > 0 then count('queued', ENQ_BATCH.queued) end
if ENQ_BATCH.ttl > 0 then extend_ttl(JOBS, ENQ_BATCH.ttl) end
return replies
