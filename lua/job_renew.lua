-- job_renew.lua: the node running a durable job renews its lease.
-- KEYS: see limits.lua and jobs.lua. ARGV 1-6: see limits.lua.
-- ARGV: 7 job id  8 run  9 lease µs
-- Reply: 1 renewed, 0 the run is no longer this node's, 2 renewed but cancelled (CancelJob):
-- the node stops the handler.
local ID, RUN_NO, LEASE_US = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local j = job_get(ID)
if not j or j[J_RUNS] ~= RUN_NO or not job_runs(j) then return 0 end
redis.call('ZADD', LEASE, I(now_us() + LEASE_US), ID)
extend_ttl(LEASE, LEASE_US + 60000000)
extend_ttl(JOBS, LEASE_US + 60000000)
if j[J_STATE] == JOB_CANCELLING then return 2 end
return 1
