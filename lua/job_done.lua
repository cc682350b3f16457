-- job_done.lua: a run of a durable job ended on the node that ran it.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 job id  8 run  9 outcome (1 done, 2 failed, 3 given back: its node is closing)
--       10 data (the result, or the error)  11 µs to wait before a retry
-- Reply: {code, woken}: code 0 the run is no longer this node's (its lease lapsed), 1 result kept,
--   2 to be retried, 3 failed for the last time (dead-lettered), 4 back in line, 5 cancelled
--   (CancelJob asked while it ran: unless the handler returned a result, the job ends with the
--   result "cancelled", not a retry); woken 1 when somebody waits for the result.
local ID, RUN_NO, OUT, DATA, BACKOFF = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11])
local now = now_us()
local j = job_get(ID)
if not j or j[J_RUNS] ~= RUN_NO or not job_runs(j) then return {0, 0} end
local function b(x) if x then return 1 end return 0 end
if OUT == 1 then
  count('succeeded')
  return {1, b(job_end(now, ID, j, RESULT_DONE, DATA))}
end
if j[J_STATE] == JOB_CANCELLING then
  return {5, b(job_end(now, ID, j, RESULT_CANCELLED, ''))}
end
redis.call('ZREM', LEASE, ID)
if OUT == 3 then
  job_requeue(now, ID, j)
  return {4, 0}
end
count('failed')
j[J_FAILURES] = j[J_FAILURES] + 1
if j[J_FAILURES] > j[J_MAX_RETRIES] then return {3, b(job_dead(now, ID, j, DATA))} end
count('retried')
j[J_STATE], j[J_HOLDER] = JOB_RETRYING, ''
redis.call('ZADD', LEASE, I(now + BACKOFF), ID)
extend_ttl(LEASE, BACKOFF + 60000000)
job_put(ID, j, BACKOFF + j[J_WAIT])
return {2, 0}
