-- limits.lua: opens every per-key script; the rate-limit algorithms live here only. pause.lua
-- follows it, then line.lua, the helpers of the line (in admit's case, after the fast path).
--
-- KEYS (every per-key script, all with the same {hash tag}):
--   1 w (window state of the main rate)  2..5 q:0..q:3 (lines, priority low..critical)
--   6 granted (ZSET raw ticket -> grant µs)  7 paused (string: until µs, -1 = forever; see pause.lua)
--   8 stats (HASH)  9 dlq (LIST)  10 evicted (ZSET id -> deadline µs)  11 fair (HASH: the
--   state of the key's lines served in fair shares, see fair.lua)  then the script's own keys,
--   then the windows of the limit's further rates, one per rate, in order, and last, for a
--   limit with a concurrency cap, run (ZSET id -> µs its slot lapses unless renewed) (see ARGV 1)
-- ARGV (every per-key script): 1 the algorithm (0 sliding log, 1 fixed window, 2 GCRA), or, for
--   a limit whose main rate counts cost units, that has further rates, a concurrency cap or is
--   a shadow limit or a bound per tenant, "algorithm,units,concurrency,slot lease µs,shadow,
--   max queue per tenant" and for each further rate ";max,window µs,burst,units" (units: 1
--   counts cost units, 0 requests; shadow: 1 the limit is watched, not enforced, see
--   shadow.lua; max queue per tenant: 0 none, see fair.lua)
--   2 max (0: no rate, only a concurrency cap)  3 window µs  4 burst (GCRA)  5 stats TTL ms
--   6 external pause (0 none, -1 forever, else until µs)
-- Times are µs of Redis server time. Numbers handed to redis.call go through I(), because Lua
-- would print a 16-digit number in exponent form.
--
-- A rate counting requests charges 1 a grant, one counting units the grant's cost. A sliding
-- log holds one entry a grant: its member is the ticket id, followed by the cost in decimal
-- when the rate counts units and the cost is not 1, or by 'o' and the overage for an overage
-- settled later. The log of a rate that counts units also holds the sum of its entries' costs,
-- as the negated score of the member SUM (a NUL byte: no id is one byte long), below every
-- time: kept by every write, it lives and lapses with the log, and makes reading the log's
-- cost O(stale entries) rather than O(entries). A concurrency cap holds one slot a grant in run, until released or lapsed.
-- Twin of every lim_ function: ratelimit.Window and queue's memRates.
local GRANTED, PAUSED, STATS, DLQ, EVICTED, FAIR
-- The limit, as bind last read it from ARGV 1-6 (LAST): a script reads it on every call; a
-- Redis function keeps it between calls (marked "kept between calls": see lua.Library), so that
-- a call with the limit of the call before reads none of it again.
local ALG, STATS_TTL, EXT_PAUSE -- kept between calls
local LAST = {} -- kept between calls
-- The rates: NR of them, 1 the main one; each with its window's key, max, window, burst,
-- whether it counts units, and GCRA's emission interval (rounded up: never faster than the
-- limit) and bucket depth, µs.
local NR, HAS_UNITS = 1, false -- kept between calls
local R_KEY, R_MAX, R_WIN, R_BURST, R_UNITS, R_EMIT, R_TAU = {}, {}, {}, {}, {}, {}, {} -- kept between calls
-- FREE[i]: what rate i may admit still, as lim_free read it less what lim_take took since;
-- TAKEN[i], what lim_take took since.
local FREE, TAKEN = {}, {}
-- The concurrency cap (0: none) and its slots' lease (µs); its run set and the slots free (as
-- FREE is for the rates).
local CONC, SLOT_US = 0, 0 -- kept between calls
local RUN, CFREE = nil, 0
-- Whether the limit is a shadow limit (see shadow.lua); how many tickets one tenant may have
-- waiting (0: no bound; see fair.lua).
local SHADOW, MAXQT = false, 0 -- kept between calls

-- Each window as lim_free last read it (fixed window: start, count and length, the length in
-- seen.w, not a local of its own: the largest library is near Lua's 200 locals a function;
-- GCRA: tat), so that lim_record need not read it again; a sliding log of a rate counting
-- requests, as lim_free last trimmed it (the edge and the live entries, the grants lim_record
-- added since counted in), so that rate_slot need not count it again. Scripts write the windows
-- only through the lim_ functions, which drop it but for lim_record on a sliding log; bind
-- forgets it. seen.mw and seen.mt: the window length a sliding log's PEXPIRE last had, and its
-- argument (ms, formatted), so that a run of calls of one length formats it once.
local seen, seen_s, seen_n = {w = {}}, {}, {} -- kept between calls

-- Points the helpers at the key whose names are in KEYS and whose limit is in ARGV. Every script
-- runs it once, here; admit_many.lua again for each further key it admits to, with KEYS and ARGV
-- its own locals, which it sets to that key's part. The limit is read again only when ARGV 1-6
-- differ from those it read last (keys that share settings share them there).
local function bind()
  GRANTED, PAUSED, STATS, DLQ, EVICTED, FAIR = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
  local L = LAST
  if ARGV[1] ~= L[1] or ARGV[2] ~= L[2] or ARGV[3] ~= L[3] or ARGV[4] ~= L[4] or ARGV[5] ~= L[5] or ARGV[6] ~= L[6] then
    L[1] = nil -- read afresh until read whole
    STATS_TTL, EXT_PAUSE = tonumber(ARGV[5]), tonumber(ARGV[6])
    NR, R_UNITS[1], CONC, SLOT_US, SHADOW, MAXQT = 1, false, 0, 0, false, 0
    ALG = tonumber(ARGV[1])
    if not ALG then
      local main = true
      for part in string.gmatch(ARGV[1], '[^;]+') do
        if main then
          local a, u, cc, sl, sh, mq = string.match(part, '^(%d+),(%d),(%d+),(%d+),?(%d?),?(%d*)$')
          ALG, R_UNITS[1], CONC, SLOT_US, main = tonumber(a), u == '1', tonumber(cc), tonumber(sl), false
          SHADOW, MAXQT = sh == '1', tonumber(mq) or 0
        else
          local m, w, b, u = string.match(part, '^(%d+),(%d+),(%d+),(%d)$')
          NR = NR + 1
          R_MAX[NR], R_WIN[NR], R_BURST[NR], R_UNITS[NR] = tonumber(m), tonumber(w), tonumber(b), u == '1'
        end
      end
    end
    R_MAX[1], R_WIN[1], R_BURST[1] = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
    if R_MAX[1] == 0 then NR = 0 end -- a concurrency cap alone
    HAS_UNITS = false
    for i = 1, NR do
      R_EMIT[i] = math.ceil(R_WIN[i] / R_MAX[i])
      R_TAU[i] = R_EMIT[i] * R_BURST[i]
      HAS_UNITS = HAS_UNITS or R_UNITS[i]
    end
    L[1], L[2], L[3], L[4], L[5], L[6] = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  end
  local last = #KEYS -- the further rates' windows end here, or before run
  RUN = nil
  if CONC > 0 then RUN, last = KEYS[#KEYS], #KEYS - 1 end
  R_KEY[1] = KEYS[1]
  for i = 2, NR do R_KEY[i] = KEYS[last - NR + i] end
  for i = 1, NR do seen[i] = false end
end
bind()

-- admit_many.lua puts format_once in its place, which formats each number once a call.
local function I(x) return string.format('%d', x) end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function ms(us) return I(math.max(1, math.ceil(us / 1000))) end

-- What a grant of cost c counts against rate i.
local function charge(i, c)
  if R_UNITS[i] then return c end
  return 1
end

-- The cost of sliding-log entry m of a rate that counts units (see the header).
local function entry_cost(m)
  if #m == 16 then return 1 end
  local s = string.sub(m, 17)
  if string.byte(s, 1) == 111 then s = string.sub(s, 2) end -- 'o': an overage
  return tonumber(s) or 1
end

-- The sliding-log member of a grant of cost c for id in rate i.
local function member(i, id, c)
  if R_UNITS[i] and c ~= 1 then return id .. I(c) end
  return id
end

local SUM = '\0'

-- The sum of the costs in rate i's sliding log (a rate that counts units), stale entries too.
local function log_sum(i) return -(tonumber(redis.call('ZSCORE', R_KEY[i], SUM)) or 0) end

-- Adds d to the sum of the costs in rate i's sliding log.
local function log_add(i, d)
  if d ~= 0 then redis.call('ZADD', R_KEY[i], I(-math.max(0, log_sum(i) + d)), SUM) end
end

-- The cost of the entries of rate i's sliding log at or before edge (stale), and them.
local function log_stale(i, edge)
  local stale = redis.call('ZRANGEBYSCORE', R_KEY[i], '(0', I(edge))
  local cost = 0
  for _, m in ipairs(stale) do cost = cost + entry_cost(m) end
  return cost, stale
end

-- What the live entries of rate i's sliding log count, those after edge. With trim, stale
-- entries are removed first.
local function log_used(i, edge, trim)
  local W = R_KEY[i]
  if not R_UNITS[i] then
    if trim then
      redis.call('ZREMRANGEBYSCORE', W, '-inf', I(edge))
      seen[i], seen_s[i], seen_n[i] = true, edge, redis.call('ZCARD', W)
      return seen_n[i]
    end
    return redis.call('ZCOUNT', W, '(' .. I(edge), '+inf')
  end
  local cost, stale = log_stale(i, edge)
  if trim and #stale > 0 then
    redis.call('ZREMRANGEBYSCORE', W, '(0', I(edge))
    log_add(i, -cost)
    return log_sum(i)
  end
  return log_sum(i) - cost
end

-- What rate i may admit now. With trim, stale sliding-log entries are removed first.
local function rate_free(i, now, trim)
  local W, MAX, WIN = R_KEY[i], R_MAX[i], R_WIN[i]
  local used
  if ALG == 0 then
    used = log_used(i, now - WIN, trim)
  elseif ALG == 1 then
    local v = redis.call('HMGET', W, 's', 'n', 'w')
    seen[i], seen_s[i], seen_n[i], seen.w[i] = true, tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
    if seen_s[i] == now - (now % WIN) then used = seen_n[i] or 0 else used = 0 end
  else
    seen[i], seen_s[i] = true, tonumber(redis.call('GET', W)) or 0
    local tat = math.max(seen_s[i], now)
    return math.max(0, math.min(R_BURST[i], math.floor((now + R_TAU[i] - tat) / R_EMIT[i])))
  end
  return math.max(0, MAX - used)
end

-- The least any rate, and the concurrency cap, may admit still (FREE, CFREE).
local function lim_least()
  local least = nil
  for i = 1, NR do
    if not least or FREE[i] < least then least = FREE[i] end
  end
  if CONC > 0 and (not least or CFREE < least) then least = CFREE end
  return least or 0
end

-- How many requests of cost 1 may start now; FREE holds what each rate may admit, CFREE how
-- many slots of the concurrency cap are free (with trim, lapsed slots are taken back first).
local function lim_free(now, trim)
  for i = 1, NR do FREE[i], TAKEN[i] = rate_free(i, now, trim), 0 end
  if CONC > 0 then
    local running
    if trim then
      redis.call('ZREMRANGEBYSCORE', RUN, '-inf', I(now))
      running = redis.call('ZCARD', RUN)
    else
      running = redis.call('ZCOUNT', RUN, '(' .. I(now), '+inf')
    end
    CFREE = math.max(0, CONC - running)
  end
  return lim_least()
end

-- Whether a grant of cost c fits in what every rate may admit still (FREE) and a slot is free.
local function lim_fits(c)
  for i = 1, NR do
    if charge(i, c) > FREE[i] then return false end
  end
  return CONC == 0 or CFREE >= 1
end

-- Sets FREE and CFREE to nothing: a paused key admits nothing.
local function lim_none()
  for i = 1, NR do FREE[i] = 0 end
  CFREE = 0
end

-- Whether some time a grant of cost c could fit: no rate that counts units holds less than c
-- (its Max; GCRA, its burst). A limit lowered at run time may leave such tickets in the line.
local function lim_could_fit(c)
  for i = 1, NR do
    if R_UNITS[i] then
      local cap = R_MAX[i]
      if ALG == 2 then cap = R_BURST[i] end
      if c > cap then return false end
    end
  end
  return true
end

-- Takes a grant of cost c from FREE, and a slot.
local function lim_take(c)
  for i = 1, NR do
    FREE[i] = FREE[i] - charge(i, c)
    TAKEN[i] = TAKEN[i] + charge(i, c)
  end
  CFREE = CFREE - 1
end


-- The tightest rate: the one with the least of its max left (FREE), the first of equals.
local function lim_tight()
  local t = 1
  for i = 2, NR do
    if FREE[i] * R_MAX[t] < FREE[t] * R_MAX[i] then t = i end
  end
  return t
end

-- How long until rate i's window is entirely free again, µs.
local function rate_reset_after(i, now)
  local W = R_KEY[i]
  if ALG == 0 then
    local last = redis.call('ZRANGE', W, -1, -1, 'WITHSCORES')[2]
    if not last then return 0 end
    return math.max(0, tonumber(last) + R_WIN[i] - now)
  elseif ALG == 1 then
    return now - (now % R_WIN[i]) + R_WIN[i] - now
  end
  return math.max(0, (tonumber(redis.call('GET', W)) or 0) - now)
end

-- How long until the tightest rate's window is entirely free again, µs (0 with no rate).
local function lim_reset_after(now)
  if NR == 0 then return 0 end
  return rate_reset_after(lim_tight(), now)
end

-- Which rate remaining and reset after are of: the tightest (1-based), 0 with no rate (the
-- concurrency cap's).
local function lim_which()
  if NR == 0 then return 0 end
  return lim_tight()
end

-- What the tightest rate may admit still; with no rate, the free slots.
local function lim_remaining()
  if NR == 0 then return CFREE end
  return FREE[lim_tight()]
end

-- How long until the tightest rate's window would be entirely free again, µs, were what
-- lim_take took since lim_free recorded at now: what lim_record will answer (0 with no rate).
local function lim_reset_taken(now)
  if NR == 0 then return 0 end
  local t = lim_tight()
  if ALG == 0 then return R_WIN[t] end
  if ALG == 1 then return now - (now % R_WIN[t]) + R_WIN[t] - now end
  return math.max(seen_s[t] or 0, now) + R_EMIT[t] * TAKEN[t] - now
end

-- Records in rate i grants at now, of ids with costs (nil: each 1); returns how long until
-- the window is entirely free again, µs.
local function rate_record(i, now, ids, costs)
  local W, WIN = R_KEY[i], R_WIN[i]
  local total = 0
  for j = 1, #ids do total = total + charge(i, costs and costs[j] or 1) end
  if ALG == 0 then
    local added
    if #ids == 1 then -- the fast path's: without the argument table and unpack
      added = redis.call('ZADD', W, I(now), member(i, ids[1], costs and costs[1] or 1))
    else
      local args = {}
      local at = I(now)
      for j, id in ipairs(ids) do args[2 * j - 1] = at; args[2 * j] = member(i, id, costs and costs[j] or 1) end
      added = redis.call('ZADD', W, unpack(args))
    end
    if R_UNITS[i] then log_add(i, total) end
    if seen.mw ~= WIN then seen.mw, seen.mt = WIN, ms(WIN) end
    redis.call('PEXPIRE', W, seen.mt)
    if seen[i] then seen_n[i] = seen_n[i] + added end -- an id already there (a request sent again) only moves
    return WIN -- the newest entry is now's
  elseif ALG == 1 then
    -- A fixed window's hash lives until the window's end: its TTL is set when the window begins
    -- and when its length changes (a limit changed at run time, with the same start), and
    -- stays through the grants between (HINCRBY and HSET keep it).
    local start = now - (now % WIN)
    local s, w = seen_s[i], seen.w[i]
    if not seen[i] then
      local v = redis.call('HMGET', W, 's', 'w')
      s, w = tonumber(v[1]), tonumber(v[2])
    end
    if s == start then
      redis.call('HINCRBY', W, 'n', total)
      if w == WIN then return start + WIN - now end
      redis.call('HSET', W, 'w', I(WIN))
    else
      redis.call('HSET', W, 's', I(start), 'n', total, 'w', I(WIN))
    end
    redis.call('PEXPIRE', W, ms(start + WIN - now))
    return start + WIN - now
  end
  local cur = seen_s[i]
  if not seen[i] then cur = tonumber(redis.call('GET', W)) or 0 end
  local tat = math.max(cur, now) + R_EMIT[i] * total
  redis.call('SET', W, I(tat), 'PX', ms(tat - now))
  return tat - now
end

-- Records grants at now, one for each of ids, of costs (nil: each 1), in every rate. Returns
-- how long until the tightest rate's window is entirely free again, µs.
local function lim_record(now, ids, costs)
  local t = lim_tight()
  local reset = 0
  for i = 1, NR do
    local r = rate_record(i, now, ids, costs)
    if i == t then reset = r end
    if ALG ~= 0 then seen[i] = false end -- a sliding log's count is kept by rate_record
  end
  if CONC > 0 then
    local args = {}
    local lapse = I(now + SLOT_US)
    for j, id in ipairs(ids) do args[2 * j - 1] = lapse; args[2 * j] = id end
    redis.call('ZADD', RUN, unpack(args))
    redis.call('PEXPIRE', RUN, ms(SLOT_US))
  end
  return reset
end

-- Frees the slot of id, if it holds one; reports whether it did.
local function lim_release(id)
  return CONC > 0 and redis.call('ZREM', RUN, id) == 1
end

-- Gives back to rate i d of the grant of cost c made at granted_at for id (all of it when
-- d == c): its sliding-log entry keeps its time with the rest of the cost.
local function rate_give_back(i, now, id, granted_at, c, d)
  local W = R_KEY[i]
  seen[i] = false
  if ALG == 0 then
    local m = member(i, id, c)
    if not R_UNITS[i] then
      redis.call('ZREM', W, m)
    elseif redis.call('ZREM', W, m) == 1 then
      if d < c then redis.call('ZADD', W, I(granted_at), member(i, id, c - d)) end
      log_add(i, -d)
    end
  elseif ALG == 1 then
    local start = granted_at - (granted_at % R_WIN[i])
    local v = redis.call('HMGET', W, 's', 'n')
    if tonumber(v[1]) == start and (tonumber(v[2]) or 0) > 0 then
      redis.call('HSET', W, 'n', I(math.max(0, tonumber(v[2]) - d)))
    end
  else
    local tat = tonumber(redis.call('GET', W))
    if tat and tat > now then redis.call('SET', W, I(math.max(now, tat - R_EMIT[i] * d)), 'KEEPTTL') end
  end
end

-- Takes d from rate i now, to lapse reset µs from now (see holdback.lua).
local function lim_hold(i, now, d, reset)
  local W, WIN = R_KEY[i], R_WIN[i]
  seen[i] = false
  if ALG == 0 then
    local at = math.min(now, math.max(now - WIN + 1, now + reset - WIN))
    local base = string.format('%016d', now % 10000000000000000)
    if R_UNITS[i] then
      redis.call('ZADD', W, I(at), base .. I(d))
      log_add(i, d)
    else
      local args = {}
      for j = 1, d do args[2 * j - 1] = I(at); args[2 * j] = base .. '#' .. j end
      redis.call('ZADD', W, unpack(args))
    end
    redis.call('PEXPIRE', W, ms(WIN))
  elseif ALG == 1 then
    local start = now - (now % WIN)
    if tonumber(redis.call('HGET', W, 's')) == start then
      redis.call('HINCRBY', W, 'n', d)
      redis.call('HSET', W, 'w', I(WIN))
    else
      redis.call('HSET', W, 's', I(start), 'n', d, 'w', I(WIN))
    end
    redis.call('PEXPIRE', W, ms(start + WIN - now))
  else
    local tat = math.max(tonumber(redis.call('GET', W)) or 0, now) + R_EMIT[i] * d
    redis.call('SET', W, I(tat), 'PX', ms(tat - now))
  end
end

-- Gives back the grant of cost c (nil: 1) made at granted_at for id, in every rate.
local function lim_refund(now, id, granted_at, c)
  c = c or 1
  for i = 1, NR do rate_give_back(i, now, id, granted_at, charge(i, c), charge(i, c)) end
  lim_release(id)
end

-- Changes the grant made at granted_at for id from cost charged to cost actual in every rate
-- that counts units: less gives the difference back as of the grant's time, more charges the
-- overage at now (a sliding log keeps it as an entry of its own).
local function lim_settle(now, id, granted_at, charged, actual)
  for i = 1, NR do
    if R_UNITS[i] then
      if actual < charged then
        rate_give_back(i, now, id, granted_at, charged, charged - actual)
      elseif actual > charged then
        local d = actual - charged
        if ALG == 0 then
          redis.call('ZADD', R_KEY[i], I(now), id .. 'o' .. I(d))
          log_add(i, d)
          redis.call('PEXPIRE', R_KEY[i], ms(R_WIN[i]))
        else
          seen[i] = false
          rate_record(i, now, {id}, {d})
        end
        seen[i] = false
      end
    end
  end
end

-- The earliest time rate i admits k more (requests or units, as it counts) when FREE[i] may
-- start now and everything ahead is served.
local function rate_slot(i, now, k)
  local W, MAX, WIN, free = R_KEY[i], R_MAX[i], R_WIN[i], FREE[i]
  if k <= free then return now end
  if ALG == 0 then
    local stale, c = 0, seen_n[i]
    if not (seen[i] and seen_s[i] == now - WIN) then -- not trimmed at now in this call
      stale = redis.call('ZCOUNT', W, '-inf', I(now - WIN))
      c = redis.call('ZCARD', W) - stale
    end
    if c <= 0 then return now + WIN * math.floor((k - 1) / MAX) end
    if R_UNITS[i] then
      -- The oldest live entries, in chunks, until they free enough.
      local need = log_used(i, now - WIN, false) + k - MAX
      for at = stale, stale + c - 1, 64 do
        local live = redis.call('ZRANGE', W, at, at + 63, 'WITHSCORES')
        for j = 1, #live, 2 do
          need = need - entry_cost(live[j])
          if need <= 0 then return tonumber(live[j + 1]) + WIN end
        end
      end
      return tonumber(redis.call('ZRANGE', W, -1, -1, 'WITHSCORES')[2]) + WIN + WIN * math.floor((k - 1) / MAX)
    end
    local j = math.max(0, c - MAX) + (k - free) - 1
    if j < c then
      return tonumber(redis.call('ZRANGE', W, stale + j, stale + j, 'WITHSCORES')[2]) + WIN
    end
    local rounds = math.floor(j / c)
    j = j % c
    return tonumber(redis.call('ZRANGE', W, stale + j, stale + j, 'WITHSCORES')[2]) + WIN * (rounds + 1)
  elseif ALG == 1 then
    return now - (now % WIN) + WIN * (1 + math.floor((k - free - 1) / MAX))
  end
  local tat = math.max(tonumber(redis.call('GET', W)) or 0, now)
  return math.max(now, tat + R_EMIT[i] * k - R_TAU[i])
end

-- The earliest time a request of cost c may start behind k - 1 requests of units cost in all,
-- when FREE may start now and everything ahead is served: the latest of the rates' answers.
local function lim_slot(now, k, units, c)
  local at = now
  for i = 1, NR do
    local need = k
    if R_UNITS[i] then need = (units or (k - 1)) + (c or 1) end
    at = math.max(at, rate_slot(i, now, need))
  end
  return at
end

-- When to look again at a line held up by a request of cost c: when the rates admit it, or,
-- when only the concurrency cap holds it, when its first slot lapses (a release wakes the
-- processors sooner).
local function lim_next(now, c)
  local at = lim_slot(now, 1, 0, c)
  if at <= now and CONC > 0 and CFREE < 1 then
    local first = redis.call('ZRANGE', RUN, 0, 0, 'WITHSCORES')[2]
    if first then at = math.max(now + 1, tonumber(first)) else at = now + SLOT_US end
  end
  return at
end

-- How many hold a slot of the concurrency cap now (0 without one).
local function lim_running(now)
  if CONC == 0 then return 0 end
  return redis.call('ZCOUNT', RUN, '(' .. I(now), '+inf')
end

-- What each rate counts now, for status: {used, free} per rate.
local function lim_used(now)
  local out = {}
  for i = 1, NR do
    local used
    if ALG == 0 then
      used = log_used(i, now - R_WIN[i], false)
    elseif ALG == 1 then
      local v = redis.call('HMGET', R_KEY[i], 's', 'n')
      if tonumber(v[1]) == now - (now % R_WIN[i]) then used = tonumber(v[2]) or 0 else used = 0 end
    else
      used = R_BURST[i] - FREE[i]
    end
    out[#out + 1] = used
    out[#out + 1] = FREE[i]
  end
  return out
end
