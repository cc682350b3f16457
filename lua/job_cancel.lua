-- job_cancel.lua: CancelJob. A job waiting in its line, scheduled or waiting for a retry ends
-- at once with the result "cancelled" (its ticket taken out of its line); a running one is
-- marked cancelled, for its node to learn on its next lease renewal and stop its handler (its
-- run's end then records "cancelled"). Twin: memKey.cancelJob.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 job id
-- Reply: {code, woken}: code 0 no such job (or it ended already), 1 cancelled, 2 running: its
--   node is asked to stop it; woken 1 when somebody waits for the result.
local ID = ARGV[7]
local now = now_us()
local j = job_get(ID)
if not j then return {0, 0} end
if job_runs(j) then
  if j[J_STATE] == JOB_RUNNING then
    j[J_STATE] = JOB_CANCELLING
    job_put(ID, j, 0)
  end
  return {2, 0}
end
if j[J_STATE] == JOB_IN_LINE then
  -- Its ticket is somewhere in its priority's line (made when it joined it): found by id.
  local q = KEYS[2 + j[J_PRIORITY]]
  for _, raw in ipairs(redis.call('LRANGE', q, 0, -1)) do
    local t = decode(raw)
    if t and t[T_ID] == ID then
      redis.call('LREM', q, 1, raw)
      line_left(j[J_PRIORITY], t, false)
      break
    end
  end
end
count('cancelled')
if job_end(now, ID, j, RESULT_CANCELLED, '') then return {1, 1} end
return {1, 0}
