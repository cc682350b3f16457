-- admit_many.lua + admit_many_end.lua: admits several tickets in one call, of one key or of
-- several (on a cluster, the keys of one slot only), with one TIME for all. For each key, in
-- the order given: the pause and the line are checked and the window read once; its tickets,
-- in the order given, are granted while the key is quiet and the limit allows each one's cost
-- in every rate (and a slot of its concurrency cap), with one window write for them all, and
-- the rest go through the line one by one as separate admits would (queued, full, would exceed
-- the deadline, evictions); a key of a shadow limit grants them all (shadow.lua). The script
-- is this file, limits.lua, pause.lua, quiet.lua, shadow.lua, line.lua, admit.lua and
-- admit_many_end.lua.
-- KEYS: for each key, key after key, its KEYS as limits.lua gives them (eleven, then the windows
--   of further rates and the run set, as its limit has).
-- ARGV: 1 m, how many sets of settings follow; then m sets of ten: 1-6 see limits.lua  7 max
--   queue  8 overflow  9 head (see admit_fast.lua)  10 how many KEYS a key of these settings
--   has; then for each key, key after key: the number of its set (1..m), n, its tickets, then n
--   times: raw ticket, ticket id, priority, deadline µs, cost (see admit_fast.lua). Keys of one
--   limit share a set: most keys, at scale. A key sent lean, -n in place of n, only grants: its
--   KEYS are the first seven of limits.lua's eleven (to paused) and those after the eleven,
--   its tickets two arguments each, ticket id and cost, and those it does not grant are not
--   admitted at all (no line is read or written for them: their sender admits them again, in
--   full). Not for a shadow limit, whose grants count in stats.
-- Reply: one entry per key: {now µs, g, free, reset, step, which rate, then for a limit of
--   several rates, of units, a concurrency cap or a shadow limit, the remaining and reset
--   after µs of each of the g granted, then for a shadow key not paused (all n granted) what
--   the limit would have done with each and its would-be wait µs (see shadow.lua),
--   then for each ticket after the first g: code, remaining, earliest µs, line length before,
--   evicted raw or '', reset after µs} (see admit_fast.lua), where the first g tickets were
--   granted, the i-th of them (of a limit of one rate counting requests) with free - i
--   remaining and reset - (g - i) * step µs until the window is free again; for a key sent
--   lean, nothing after the granted's; or an error reply (the key's tickets' answer: the other
--   keys' stand).

-- The helpers read KEYS and ARGV: these locals hold one key's part of each at a time, the
-- first key's to begin with.
local ALL_KEYS, ALL_ARGV = KEYS, ARGV
local KEYS, ARGV = KEYS, {unpack(ARGV, 2, 11)}
-- The ticket line_admit admits, and the key's settings and free slots.
local RAW, ID, PRIO, DEADLINE, MAXQ, OVERFLOW, HEAD, now, free, COST
local TENANT, WEIGHT = '', 1 -- a ticket of a tenant is admitted on its own (queue's admitAll)
