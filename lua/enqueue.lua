-- enqueue.lua: puts a durable job in its key's line and stores its record. A job is never
-- granted here, even under the limit: it goes to a node that runs its handler, which the
-- processors find in the line. The script is limits.lua, pause.lua, this file, line.lua,
-- fair.lua, jobs.lua, admit.lua and enqueue_end.lua.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7-13 as admit_fast.lua's (13 is 0)  14 the job's record (see jobs.lua)  15 µs at which
--       the job is to join its line (0: now; its record's state is then scheduled)  16 its cost
--       (the ticket's)  17 its tenant ('' or absent: none; see fair.lua)  18 the tenant's weight
--       (absent: 1)
-- Reply: as admit's; code 2 queued, 3 full, 4 would exceed deadline, 5 a job of that id is
-- waiting, running or has its result kept (nothing written), 6 scheduled (reply's 4th element
-- the time it joins its line).
local RAW, ID, PRIO, DEADLINE = ARGV[7], ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local MAXQ, OVERFLOW, HEAD = tonumber(ARGV[11]), tonumber(ARGV[12]), false
local COST = tonumber(ARGV[16]) or 1 -- the ticket's: enqueue_job reads it
local TENANT, WEIGHT = ARGV[17] or '', tonumber(ARGV[18]) or 1
local now = now_us()
local free = lim_free(now, true)
