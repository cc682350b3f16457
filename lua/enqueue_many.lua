-- enqueue_many.lua: enqueue.lua for several durable jobs of one key, with one priority, cost
-- and tenant, in one atomic step: each job as enqueue.lua would put it, in order; unless EVERY,
-- until one is refused (the line full, or its deadline out of reach), and those after it are
-- not tried. EVERY serves enqueues that callers sent each on its own and that the client sent
-- together (queue.Redis.Enqueue). The script is limits.lua, pause.lua, this file, line.lua,
-- fair.lua, jobs.lua, admit.lua, enqueue_end.lua and enqueue_many_end.lua.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 priority line  8 max queue  9 overflow  10 every (1: a job refused does not stop those
--       after it)  11 n, the number of jobs; then n times: the job's raw ticket, its id, its
--       record (see jobs.lua) and its deadline µs; then µs at which the jobs are to join the
--       line (0: now; their records' state is then scheduled), their cost (each ticket's),
--       their tenant ('' or absent: none; see fair.lua) and its weight
-- Reply: the time now µs, what the limit may admit now and which rate that is of (the
-- remaining and which of admit's reply, the same for every job), then two elements per job
-- tried, in order: for a job queued with nothing evicted and nothing after its ticket in its
-- entry, the earliest start µs and the line's length before it; for any other, its reply as
-- enqueue.lua's (code 6 for a scheduled one) and 0. Unless every, the last job is a refusal
-- (code 3 or 4) when fewer than n.
local PRIO, DEADLINE = tonumber(ARGV[7]), nil
local MAXQ, OVERFLOW, HEAD = tonumber(ARGV[8]), tonumber(ARGV[9]), false
local EVERY, RAW, ID = ARGV[10] == '1', nil, nil
local JOBS_END = 11 + 4 * tonumber(ARGV[11]) -- the last job's last argument
local COST = tonumber(ARGV[JOBS_END + 2]) or 1 -- every ticket's: enqueue_job reads it
local TENANT = ARGV[JOBS_END + 3] or ''
local WEIGHT = tonumber(ARGV[JOBS_END + 4]) or 1
local now = now_us()
local free = lim_free(now, true)
