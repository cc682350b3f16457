-- job_done_many.lua: job_done.lua for runs of several durable jobs of one key that ended on the
-- node that ran them, each as job_done.lua would end it, in order, in one atomic step. The
-- script is jobs.lua's helpers, job_finish.lua and this file.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 n, the number of runs; then n times: job id, run, outcome, data, µs to wait before a
--       retry (as job_done.lua's ARGV 7-11)
-- Reply: job_done.lua's {code, woken} for each run, in order.
local now = now_us()
local last = 7 + 5 * tonumber(ARGV[7])
local ids = {}
for i = 8, last, 5 do ids[#ids + 1] = ARGV[i] end
local replies, done = {}, done_new(ids)
for i = 8, last, 5 do
  replies[#replies + 1] = job_finish(now, ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3],
    tonumber(ARGV[i + 4]), done)
end
-- The runs done learn who waits for their results now (job_finish's reply said 0).
local woken = done_upkeep(now, done)
for k, r in ipairs(replies) do
  if r[1] == 1 and woken[ids[k]] then r[2] = 1 end
end
return replies
