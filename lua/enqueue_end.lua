-- enqueue_end.lua: the end of enqueue.lua and enqueue_many.lua. enqueue_job queues the ticket RAW
-- of the job ID, of cost COST, and stores its record rec, unless a job of that id is waiting,
-- running or has its result kept (reply code 5, nothing written); it returns admit's reply. A
-- job to run at RUN_AT (µs), later than now, is kept with its record (whose state says
-- scheduled) in the scheduled set, not the line, until the grant step moves it there (reply
-- code 6; the line's length in place of the earliest start).

-- duplicate is the reply to a job whose id is taken (code 5): nothing written.
local function duplicate() return {5, now, 0, 0, 0, '', 0} end

-- enqueue_job: see above.
local function enqueue_job(rec, run_at)
  local b = ENQ_BATCH
  if b then
    if b.seen[ID] then return duplicate() end
  else
    local kept = redis.call('ZSCORE', REXP, ID)
    if redis.call('HEXISTS', JOBS, ID) == 1 or (kept and tonumber(kept) > now) then
      return duplicate()
    end
  end
  if run_at > now then
    if b then
      b.seen[ID] = true
      enq_push(b) -- before line_len reads the lines
    end
    redis.call('HSET', JOBS, ID, rec)
    redis.call('ZADD', SCHED, I(run_at), ID)
    local keep = run_at - now + DEADLINE - now + 60000000
    extend_ttl(JOBS, keep)
    extend_ttl(SCHED, keep)
    count('scheduled')
    return {6, now, 0, run_at, line_len(), '', 0}
  end
  local reply = line_admit()
  if reply[1] == 2 then
    if b then
      b.seen[ID] = true
      b.records[#b.records + 1] = ID
      b.records[#b.records + 1] = rec
      b.ttl = math.max(b.ttl, DEADLINE - now + 60000000)
    else
      redis.call('HSET', JOBS, ID, rec)
      extend_ttl(JOBS, DEADLINE - now + 60000000)
    end
  end
  return reply
end
