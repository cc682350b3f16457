-- job_done.lua: a run of a durable job ended on the node that ran it. The script is jobs.lua's
-- helpers, job_finish.lua and this file.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 job id  8 run  9 outcome (1 done, 2 failed, 3 given back: its node is closing)
--       10 data (the result, or the error)  11 µs to wait before a retry
-- Reply: {code, woken}: code 0 the run is no longer this node's (its lease lapsed), 1 result kept,
--   2 to be retried, 3 failed for the last time (dead-lettered), 4 back in line, 5 cancelled
--   (CancelJob asked while it ran: unless the handler returned a result, the job ends with the
--   result "cancelled", not a retry); woken 1 when somebody waits for the result.
return job_finish(now_us(), ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11]))
