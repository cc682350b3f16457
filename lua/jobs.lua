-- jobs.lua: the helpers of durable jobs; follows line.lua and fair.lua in every script that
-- takes, after the eleven KEYS of limits.lua, the five of a key's jobs and the local grants:
--   12 jobs (HASH id -> record)  13 lease (ZSET id -> µs its lease, or its wait for a retry, ends)
--   14 results (HASH id -> result)  15 result expiry (ZSET id -> µs)  16 waited (SET ids Wait asks for)
--   17 local grants (ZSET raw ticket -> grant µs): the grants a processor made for its own node's
--      tickets lately, kept for twice the claim timeout so that a node whose grant reply was lost
--      (a connection reset after the script ran) can still claim them, and so that a grant is
--      given back once only (by whoever takes it out of this set: cancel or refund)
--   18 scheduled (ZSET id -> µs the job joins its line): jobs enqueued to run later
-- A record is a msgpack array: 1 key  2 handler  3 payload  4 priority (0-3)  5 max retries
--   6 failures  7 runs (the token of the current run)  8 leases lost  9 time it may wait in line µs
--   10 state (0 in line, 1 running, 2 waiting to be retried, 3 scheduled, 4 running and
--   cancelled: its node is to stop it)  11 node running it ('' none)
--   12 node that enqueued it  13 result TTL ms  14 enqueued µs  15 cost (only when not 1, or
--   when 16 follows)  16 traceparent and 17 tracestate (W3C trace context of the span that
--   enqueued it; only when traced, or empty before 18)  18 tenant and 19 its weight (only
--   with a tenant, see fair.lua): the scripts keep what they do not read, and a record stays an
--   array (a table with a hole would pack as a map)
-- A result is a msgpack array {status, data}: status 0 done (data: the handler's result),
-- 1 failed (data: the error), 2 expired in line, 3 evicted by Reset, 4 cancelled (CancelJob).
local JOBS, LEASE, RES, REXP, WAITED, LOCAL = KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[16], KEYS[17]
local SCHED = KEYS[18]

-- The positions of a record's fields, queue.Job's fields in order.
local J_KEY, J_HANDLER, J_PAYLOAD, J_PRIORITY, J_MAX_RETRIES, J_FAILURES, J_RUNS = 1, 2, 3, 4, 5, 6, 7
local J_LOST, J_WAIT, J_STATE, J_HOLDER, J_OWNER, J_RESULT_TTL, J_ENQUEUED, J_COST = 8, 9, 10, 11, 12, 13, 14, 15
local J_TENANT, J_WEIGHT = 18, 19
-- 16 and 17 (traceparent, tracestate) are read by Go only (queue.Job).
-- A record's states (queue's jobInLine, jobRunning, jobRetrying, jobScheduled, jobCancelling)
-- and a result's statuses (queue.ResultStatus).
local JOB_IN_LINE, JOB_RUNNING, JOB_RETRYING, JOB_SCHEDULED, JOB_CANCELLING = 0, 1, 2, 3, 4
local RESULT_DONE, RESULT_FAILED, RESULT_EXPIRED, RESULT_EVICTED, RESULT_CANCELLED = 0, 1, 2, 3, 4

-- Whether record j is of a run in progress: running, or running and cancelled.
local function job_runs(j) return j[J_STATE] == JOB_RUNNING or j[J_STATE] == JOB_CANCELLING end

-- The record of job id, nil when it has none or an unreadable one; raw: its bytes when the
-- caller read them (false: it has none).
local function job_get(id, raw)
  if raw == nil then raw = redis.call('HGET', JOBS, id) end
  if not raw then return nil end
  local ok, j = pcall(cmsgpack.unpack, raw)
  if not ok or type(j) ~= 'table' or type(j[J_HANDLER]) ~= 'string' or type(j[J_RUNS]) ~= 'number'
      or type(j[J_RESULT_TTL]) ~= 'number' then
    return nil
  end
  return j
end

-- Stores record j of job id, keeping the jobs at least us more; returns the record's bytes.
local function job_put(id, j, us)
  local raw = cmsgpack.pack(j)
  redis.call('HSET', JOBS, id, raw)
  extend_ttl(JOBS, us + 60000000)
  return raw
end

-- Drops up to 100 results whose time is up, and keeps the results ttl µs at least.
local function results_upkeep(now, ttl)
  local old = redis.call('ZRANGEBYSCORE', REXP, '-inf', I(now), 'LIMIT', 0, 100)
  if #old > 0 then
    redis.call('HDEL', RES, unpack(old))
    redis.call('ZREM', REXP, unpack(old))
  end
  extend_ttl(RES, ttl)
  extend_ttl(REXP, ttl)
end

-- Ends job id with a result; reports whether somebody waits for it (to be woken). With done
-- (a table, see job_finish.lua), the end is left to whoever ends several jobs, for all of them
-- at once: done.ended gets id, done.res its result, done.exp its expiry, done.ttl becomes the
-- longest time a result is kept (µs); it reports nil then (who waits is known at the end).
local function job_end(now, id, j, status, data, done)
  local ttl = j[J_RESULT_TTL] * 1000
  if done then
    done.ttl = math.max(done.ttl, ttl)
    done.ended[#done.ended + 1] = id
    done.gone[id] = true
    local res, exp = done.res, done.exp
    res[#res + 1], res[#res + 2] = id, cmsgpack.pack({status, data})
    exp[#exp + 1], exp[#exp + 2] = I(now + ttl), id
    return nil
  end
  redis.call('HSET', RES, id, cmsgpack.pack({status, data}))
  redis.call('ZADD', REXP, I(now + ttl), id)
  results_upkeep(now, ttl)
  redis.call('HDEL', JOBS, id)
  redis.call('ZREM', LEASE, id)
  redis.call('ZREM', SCHED, id)
  return redis.call('SREM', WAITED, id) == 1
end

-- Sends job id, whose handler failed for the last time, to the dead-letter list.
local function job_dead(now, id, j, msg)
  to_dlq(cmsgpack.pack({'job', id, j[J_KEY], j[J_HANDLER], j[J_PAYLOAD], j[J_FAILURES], j[J_LOST], msg, now}))
  count('dead')
  return job_end(now, id, j, RESULT_FAILED, msg)
end

-- Puts job id in its line, with the time in line it was given: back at the head (a job
-- taken back from a run or a retry), or at the tail when tail (a scheduled job whose time came).
local function job_requeue(now, id, j, tail)
  local t = {}
  t[T_ID], t[T_KEY], t[T_PRIORITY], t[T_ENQUEUED] = id, j[J_KEY], j[J_PRIORITY], now
  t[T_DEADLINE], t[T_OWNER], t[T_HANDLER] = now + j[J_WAIT], j[J_OWNER], j[J_HANDLER]
  if type(j[J_COST]) == 'number' and j[J_COST] ~= 1 then t[T_COST] = j[J_COST] end
  local tenant, w = nil, 1
  if type(j[J_TENANT]) == 'string' and j[J_TENANT] ~= '' then tenant = j[J_TENANT] end
  if type(j[J_WEIGHT]) == 'number' and j[J_WEIGHT] > 1 then w = j[J_WEIGHT] end
  local q = j[J_PRIORITY]
  line_push(q, cmsgpack.pack(t), tenant, w, cost_of(t), not tail, fair_place(q, tenant, not tail), j[J_WAIT])
  j[J_STATE], j[J_HOLDER] = JOB_IN_LINE, ''
  job_put(id, j, j[J_WAIT])
end
