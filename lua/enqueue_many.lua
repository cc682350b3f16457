-- enqueue_many.lua: enqueue.lua for several durable jobs of one key, with one priority and one
-- deadline, in one atomic step: each job as enqueue.lua would put it, in order, until one is
-- refused (the line full, or its deadline out of reach); those after it are not tried. The
-- script is limits.lua, pause.lua, this file, line.lua, jobs.lua, admit.lua, enqueue_end.lua
-- and enqueue_many_end.lua.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 priority line  8 deadline µs  9 max queue  10 overflow  11 n, the number of jobs
--       then n times: the job's raw ticket, its id, its record (see jobs.lua); then µs at which
--       the jobs are to join the line (0: now; their records' state is then scheduled), their
--       cost (each ticket's), their tenant ('' or absent: none; see fair.lua) and its weight
-- Reply: one reply of enqueue.lua's per job tried, in order (code 6 for a scheduled one); the
-- last is a refusal (code 3 or 4) when fewer than n.
local PRIO, DEADLINE = tonumber(ARGV[7]), tonumber(ARGV[8])
local MAXQ, OVERFLOW, HEAD = tonumber(ARGV[9]), tonumber(ARGV[10]), false
local RAW, ID
local COST = tonumber(ARGV[13 + 3 * tonumber(ARGV[11])]) or 1 -- every ticket's: enqueue_job reads it
local TENANT = ARGV[14 + 3 * tonumber(ARGV[11])] or ''
local WEIGHT = tonumber(ARGV[15 + 3 * tonumber(ARGV[11])]) or 1
local now = now_us()
local free = lim_free(now, true)
