-- admit_many_end.lua: the end of admit_many.lua.

-- Whether the limit bound is more than one rate counting requests enforced: its grants'
-- remaining are told one by one.
local function complex() return NR ~= 1 or HAS_UNITS or CONC > 0 or SHADOW end

-- Admits the key bound, of a shadow limit and not paused, n tickets whose arguments follow
-- ALL_ARGV[at]: each is granted (shadow.lua), with the window read again before each but the
-- first; returns the key's reply, every ticket granted, followed by what the limit would have
-- done with each and its would-be wait (shadow_grant's).
local function shadow_key(at, n)
  local out, reset, verdict, wait = {now, n, free, 0, 0, 0}, 0, 0, 0
  for i = 1, n do
    if i > 1 then lim_free(now, false) end
    local a = at + 5 * (i - 1)
    reset, verdict, wait = shadow_grant(now, ALL_ARGV[a + 2], tonumber(ALL_ARGV[a + 5]), tonumber(ALL_ARGV[a + 4]), MAXQ)
    out[5 + 2 * i], out[6 + 2 * i] = math.max(0, lim_remaining()), reset
    out[5 + 2 * n + 2 * i], out[6 + 2 * n + 2 * i] = verdict, wait
  end
  out[4], out[6] = reset, lim_which()
  return out
end

-- Admits the key bound of n tickets whose arguments follow ALL_ARGV[at], five each, or, sent
-- lean, grants what it may of them, two each (see the header); returns the key's reply.
local function admit_key(at, n, lean)
  if lean and SHADOW then error('a shadow limit sent lean') end
  -- Ticket i's id is at at + w * i - idp, its cost at at + w * i.
  local w, idp = 5, 3
  if lean then w, idp = 2, 1 end
  free = lim_free(now, true)
  if SHADOW and not shadow_paused(now) then return shadow_key(at, n) end
  local g, reset, step, told = 0, 0, 0, nil
  local tell = complex() -- each grant's remaining and reset after are told
  if free > 0 and quiet(now) then
    local ids, costs = {}, nil
    if not tell then
      -- One rate, counting requests, and no cap: each grant takes 1 of free whatever its
      -- cost, so the first min(n, free) go, as the loop below would grant them.
      g = math.min(n, free)
      for i = 1, g do ids[i] = ALL_ARGV[at + w * i - idp] end
      FREE[1], TAKEN[1] = FREE[1] - g, TAKEN[1] + g
    else
      costs, told = {}, {}
      for i = 1, n do
        local c = tonumber(ALL_ARGV[at + w * i])
        if not lim_fits(c) then break end
        lim_take(c)
        g = g + 1
        ids[g], costs[g] = ALL_ARGV[at + w * i - idp], c
        told[2 * g - 1], told[2 * g] = lim_remaining(), lim_reset_taken(now)
      end
    end
    if g > 0 then
      reset = lim_record(now, ids, costs) -- 'admitted' is counted by the nodes, as after admit_fast.lua
      if ALG == 2 and not tell then step = R_EMIT[1] end -- GCRA: each grant before the last freed EMIT sooner
    end
  end
  local out = {now, g, free, reset, step, lim_which()}
  if tell then
    for i = 1, 2 * g do out[6 + i] = told[i] end
  end
  if lean then return out end
  free = lim_least()
  for i = g + 1, n do
    local a = at + 5 * (i - 1)
    RAW, ID, PRIO, DEADLINE = ALL_ARGV[a + 1], ALL_ARGV[a + 2], tonumber(ALL_ARGV[a + 3]), tonumber(ALL_ARGV[a + 4])
    COST = tonumber(ALL_ARGV[a + 5])
    local r, o = line_admit(), #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5], out[o + 6] = r[1], r[3], r[4], r[5], r[6], r[7]
  end
  return out
end

-- Keys of one limit format the same numbers (now, the window's edge, its length): from the
-- second key of a call on, I formats each once, keeping the forms in a table of the call's own.
local forms = nil
local function format_once(x)
  local s = forms and forms[x]
  if not s then
    s = string.format('%d', x)
    if forms and x == x then forms[x] = s end -- x == x: not NaN, which no table takes as a key
  end
  return s
end
I = format_once

now = now_us()
-- The settings, each given once for every key that has them.
local sets = {}
for s = 1, tonumber(ALL_ARGV[1]) do sets[s] = {unpack(ALL_ARGV, 10 * s - 8, 10 * s + 1)} end
local replies = {}
local k, a = 0, 1 + 10 * #sets -- KEYS and ARGV taken so far
-- The set of settings the numbers in nk, MAXQ, OVERFLOW and HEAD were read from (a tonumber
-- of a string is two strtod: keys in a row of one set read them once).
local set, nk = 0, 0
while a < #ALL_ARGV do
  local s = 1 -- with one set of settings (the usual case), every key's is the first
  if #sets > 1 then s = tonumber(ALL_ARGV[a + 1]) end
  ARGV = sets[s]
  if s ~= set then
    set, nk = s, tonumber(ARGV[10])
    MAXQ, OVERFLOW, HEAD = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9] == '1'
  end
  local n, kn, w = tonumber(ALL_ARGV[a + 2]), nk, 5
  local lean = n < 0 -- sent lean: four KEYS fewer, two arguments a ticket (see the header)
  if lean then n, kn, w = -n, nk - 4, 2 end
  KEYS = {unpack(ALL_KEYS, k + 1, k + kn)}
  bind()
  -- A lean key has no stats, dead letters, evictions or fair state: a use of one fails the key.
  if lean then STATS, DLQ, EVICTED, FAIR = nil, nil, nil, nil end
  -- A key that fails (a window of the wrong type, say) fails its own tickets only.
  local ok, r = pcall(admit_key, a + 2, n, lean)
  if not ok then r = {err = type(r) == 'table' and r.err or tostring(r)} end
  replies[#replies + 1] = r
  k, a = k + kn, a + 2 + w * n
  forms = forms or {}
end
return replies
