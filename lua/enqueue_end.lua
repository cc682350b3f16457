-- enqueue_end.lua: the end of enqueue.lua and enqueue_many.lua. enqueue_job queues the ticket RAW
-- of the job ID and stores its record rec, unless a job of that id is waiting, running or has its
-- result kept (reply code 5, nothing written); it returns admit's reply.
local function enqueue_job(rec)
  local kept = redis.call('ZSCORE', REXP, ID)
  if redis.call('HEXISTS', JOBS, ID) == 1 or (kept and tonumber(kept) > now) then
    return {5, now, 0, 0, 0, '', 0}
  end
  local t = decode(RAW)
  COST = t and cost_of(t) or 1
  local reply = line_admit()
  if reply[1] == 2 then
    redis.call('HSET', JOBS, ID, rec)
    extend_ttl(JOBS, DEADLINE - now + 60000000)
  end
  return reply
end
