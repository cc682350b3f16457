-- job_finish.lua: job_finish ends run RUN_NO of job ID, whose outcome is OUT (1 done, 2 failed,
-- 3 given back: its node is closing), with DATA (the result, or the error) and, after a
-- failure, BACKOFF µs to wait before a retry; it returns {code, woken} (see job_done.lua).
-- With done (a table, made by done_new), a run done leaves what several runs' ends may do
-- together to done_upkeep: the count of runs done (done.n), their ends (see job_end), and the
-- results' upkeep (done.ttl, the longest result TTL); done.pre holds the records read for all
-- the runs at once (false: none), each used once: a second end of one job reads it afresh.
-- Part of job_done.lua and job_done_many.lua, after jobs.lua.
local function job_finish(now, ID, RUN_NO, OUT, DATA, BACKOFF, done)
  if done and done.gone[ID] then return {0, 0} end -- ended by an earlier run's end of the call
  local raw = nil
  if done then raw, done.pre[ID] = done.pre[ID], nil end
  local j = job_get(ID, raw)
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

-- done_new returns a done (see job_finish) for the runs of jobs ids, their records read.
local function done_new(ids)
  local done = {n = 0, ttl = 0, ended = {}, gone = {}, res = {}, exp = {}, pre = {}}
  for from = 1, #ids, 1000 do
    local to = math.min(#ids, from + 999)
    local recs = redis.call('HMGET', JOBS, unpack(ids, from, to))
    for k = from, to do
      if done.pre[ids[k]] == nil then done.pre[ids[k]] = recs[k - from + 1] end
    end
  end
  return done
end

-- redis.call(cmd, key, ...) over list, 1,000 elements a call (unpack's bound; step 2 keeps
-- pairs together); returns the replies' elements joined, for a reply that is a list.
local function call_over(cmd, key, list)
  local out = {}
  for from = 1, #list, 1000 do
    local r = redis.call(cmd, key, unpack(list, from, math.min(#list, from + 999)))
    if type(r) == 'table' then
      for _, v in ipairs(r) do out[#out + 1] = v end
    end
  end
  return out
end

-- done_upkeep does what job_finish left to it in done; returns the set of the jobs ended whose
-- result somebody waits for.
local function done_upkeep(now, done)
  local woken = {}
  if #done.ended == 0 then return woken end
  call_over('HSET', RES, done.res)
  call_over('ZADD', REXP, done.exp)
  call_over('HDEL', JOBS, done.ended)
  call_over('ZREM', LEASE, done.ended)
  call_over('ZREM', SCHED, done.ended)
  local waited = {}
  for k, w in ipairs(call_over('SMISMEMBER', WAITED, done.ended)) do
    if w == 1 then
      waited[#waited + 1] = done.ended[k]
      woken[done.ended[k]] = true
    end
  end
  if #waited > 0 then call_over('SREM', WAITED, waited) end
  count('succeeded', done.n)
  results_upkeep(now, done.ttl)
  return woken
end
