-- job_finish.lua: job_finish ends run RUN_NO of job ID, whose outcome is OUT (1 done, 2 failed,
-- 3 given back: its node is closing), with DATA (the result, or the error) and, after a
-- failure, BACKOFF µs to wait before a retry; it returns {code, woken} (see job_done.lua).
-- With done (a table), a run done leaves what several runs' ends may do once to done_upkeep:
-- the count of runs done (done.n) and the results' upkeep (done.ttl, the longest result TTL).
-- Part of job_done.lua and job_done_many.lua, after jobs.lua.
local function job_finish(now, ID, RUN_NO, OUT, DATA, BACKOFF, done)
  local j = job_get(ID)
  if not j or j[J_RUNS] ~= RUN_NO or not job_runs(j) then return {0, 0} end
  local function b(x) if x then return 1 end return 0 end
  if OUT == 1 then
    if done then done.n = done.n + 1 else count('succeeded') end
    return {1, b(job_end(now, ID, j, RESULT_DONE, DATA, done))}
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
end

-- done_upkeep does what job_finish left to it in done.
local function done_upkeep(now, done)
  if done.n == 0 then return end
  count('succeeded', done.n)
  results_upkeep(now, done.ttl)
end
