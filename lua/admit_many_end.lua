-- admit_many_end.lua: the end of admit_many.lua.

-- Admits the key bound of n tickets whose arguments follow ALL_ARGV[at]; returns the key's reply.
local function admit_key(at, n)
  free = lim_free(now, true)
  local g, reset, step = 0, 0, 0
  if free > 0 and quiet(now) then
    g = math.min(free, n)
    local ids = {}
    for i = 1, g do ids[i] = ALL_ARGV[at + 4 * i - 2] end
    for _ = 1, g do lim_take(1) end
    reset = lim_record(now, ids) -- 'admitted' is counted by the nodes, as after admit_fast.lua
    if ALG == 2 then step = R_EMIT[1] end -- GCRA: each grant before the last freed EMIT sooner
  end
  local out = {now, g, free, reset, step}
  free = free - g
  for i = g + 1, n do
    local a = at + 4 * (i - 1)
    RAW, ID, PRIO, DEADLINE = ALL_ARGV[a + 1], ALL_ARGV[a + 2], tonumber(ALL_ARGV[a + 3]), tonumber(ALL_ARGV[a + 4])
    local r, o = line_admit(), #out
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5], out[o + 6] = r[1], r[3], r[4], r[5], r[6], r[7]
  end
  return out
end

now = now_us()
-- The settings, each given once for every key that has them.
local sets = {}
for s = 1, tonumber(ALL_ARGV[1]) do sets[s] = {unpack(ALL_ARGV, 9 * s - 7, 9 * s + 1)} end
local replies = {}
local k, a = 0, 1 + 9 * #sets -- KEYS and ARGV taken so far
while a < #ALL_ARGV do
  KEYS, ARGV = {unpack(ALL_KEYS, k + 1, k + 10)}, sets[tonumber(ALL_ARGV[a + 1])]
  bind()
  MAXQ, OVERFLOW, HEAD = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9] == '1'
  local n = tonumber(ALL_ARGV[a + 2])
  -- A key that fails (a window of the wrong type, say) fails its own tickets only.
  local ok, r = pcall(admit_key, a + 2, n)
  if not ok then r = {err = type(r) == 'table' and r.err or tostring(r)} end
  replies[#replies + 1] = r
  k, a = k + 10, a + 2 + 4 * n
end
return replies
