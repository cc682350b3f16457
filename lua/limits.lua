-- limits.lua: opens every per-key script; the rate-limit algorithms live here only. pause.lua
-- follows it, then line.lua, the helpers of the line (in admit's case, after the fast path).
--
-- KEYS (every per-key script, all with the same {hash tag}):
--   1 w (window state)  2..5 q:0..q:3 (lines, priority low..critical)  6 granted (ZSET raw ticket -> grant µs)
--   7 paused (string: until µs, -1 = forever; see pause.lua)  8 stats (HASH)  9 dlq (LIST)  10 evicted (ZSET id -> deadline µs)
-- ARGV (every per-key script): 1 algorithm (0 sliding log, 1 fixed window, 2 GCRA)  2 max  3 window µs
--   4 burst (GCRA)  5 stats TTL ms  6 external pause (0 none, -1 forever, else until µs)
-- Times are µs of Redis server time. Numbers handed to redis.call go through I(), because Lua
-- would print a 16-digit number in exponent form.
local W, GRANTED, PAUSED, STATS, DLQ, EVICTED
local ALG, MAX, WIN, BURST, STATS_TTL, EXT_PAUSE
local EMIT -- GCRA emission interval, rounded up: never faster than the limit
local TAU  -- GCRA bucket depth in µs

-- The window as lim_free last read it (fixed window: start and count; GCRA: tat), so that
-- lim_record need not read it again. Scripts write the window only through lim_record and
-- lim_refund, which drop it.
local seen, seen_s, seen_n = false, nil, nil

-- Points the helpers at the key whose names are in KEYS and whose limit is in ARGV. Every script
-- runs it once, here; admit_many.lua again for each further key it admits to, with KEYS and ARGV
-- its own locals, which it sets to that key's part. The limit is read again only when ARGV is
-- another table than the last (keys that share settings share one table there).
local bound
local function bind()
  W, GRANTED, PAUSED, STATS, DLQ, EVICTED = KEYS[1], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
  seen = false
  if ARGV == bound then return end
  bound = ARGV
  ALG, MAX, WIN = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
  BURST, STATS_TTL, EXT_PAUSE = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  EMIT = math.ceil(WIN / MAX)
  TAU = EMIT * BURST
end
bind()

local function I(x) return string.format('%d', x) end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function ms(us) return I(math.max(1, math.ceil(us / 1000))) end

-- How many may start now. With trim, stale sliding-log entries are removed first.
local function lim_free(now, trim)
  local used
  if ALG == 0 then
    if trim then
      redis.call('ZREMRANGEBYSCORE', W, '-inf', I(now - WIN))
      used = redis.call('ZCARD', W)
    else
      used = redis.call('ZCOUNT', W, '(' .. I(now - WIN), '+inf')
    end
  elseif ALG == 1 then
    local v = redis.call('HMGET', W, 's', 'n')
    seen, seen_s, seen_n = true, tonumber(v[1]), tonumber(v[2])
    if seen_s == now - (now % WIN) then used = seen_n or 0 else used = 0 end
  else
    seen, seen_s = true, tonumber(redis.call('GET', W)) or 0
    local tat = math.max(seen_s, now)
    return math.max(0, math.min(BURST, math.floor((now + TAU - tat) / EMIT)))
  end
  return math.max(0, MAX - used)
end

-- Records n grants at now (ids: their sliding-log members) and re-applies the window's TTL.
-- Returns how long until the window is entirely free again, µs (lim_reset_after, unread).
local function lim_record(now, ids)
  local reset
  if ALG == 0 then
    local args = {}
    for i, id in ipairs(ids) do args[2 * i - 1] = I(now); args[2 * i] = id end
    redis.call('ZADD', W, unpack(args))
    redis.call('PEXPIRE', W, ms(WIN))
    reset = WIN -- the newest entry is now's
  elseif ALG == 1 then
    local start = now - (now % WIN)
    local s = seen_s
    if not seen then s = tonumber(redis.call('HGET', W, 's')) end
    if s == start then
      redis.call('HINCRBY', W, 'n', #ids)
    else
      redis.call('HSET', W, 's', I(start), 'n', #ids)
    end
    redis.call('PEXPIRE', W, ms(start + WIN - now))
    reset = start + WIN - now
  else
    local cur = seen_s
    if not seen then cur = tonumber(redis.call('GET', W)) or 0 end
    local tat = math.max(cur, now) + EMIT * #ids
    redis.call('SET', W, I(tat), 'PX', ms(tat - now))
    reset = tat - now
  end
  seen = false
  return reset
end

-- Gives back one grant made at granted_at for id.
local function lim_refund(now, id, granted_at)
  seen = false
  if ALG == 0 then
    redis.call('ZREM', W, id)
  elseif ALG == 1 then
    local start = granted_at - (granted_at % WIN)
    local v = redis.call('HMGET', W, 's', 'n')
    if tonumber(v[1]) == start and (tonumber(v[2]) or 0) > 0 then redis.call('HINCRBY', W, 'n', -1) end
  else
    local tat = tonumber(redis.call('GET', W))
    if tat and tat > now then redis.call('SET', W, I(math.max(now, tat - EMIT)), 'KEEPTTL') end
  end
end

-- The earliest time the k-th request from now may start (k >= 1) when free may start now and
-- every request ahead is served.
local function lim_slot(now, k, free)
  if k <= free then return now end
  if ALG == 0 then
    local stale = redis.call('ZCOUNT', W, '-inf', I(now - WIN))
    local c = redis.call('ZCARD', W) - stale
    if c <= 0 then return now + WIN * math.floor((k - 1) / MAX) end
    local i = math.max(0, c - MAX) + (k - free) - 1
    if i < c then
      return tonumber(redis.call('ZRANGE', W, stale + i, stale + i, 'WITHSCORES')[2]) + WIN
    end
    local rounds = math.floor(i / c)
    local j = i % c
    return tonumber(redis.call('ZRANGE', W, stale + j, stale + j, 'WITHSCORES')[2]) + WIN * (rounds + 1)
  elseif ALG == 1 then
    return now - (now % WIN) + WIN * (1 + math.floor((k - free - 1) / MAX))
  end
  local tat = math.max(tonumber(redis.call('GET', W)) or 0, now)
  return math.max(now, tat + EMIT * k - TAU)
end

-- How long until the window is entirely free again, µs.
local function lim_reset_after(now)
  if ALG == 0 then
    local last = redis.call('ZRANGE', W, -1, -1, 'WITHSCORES')[2]
    if not last then return 0 end
    return math.max(0, tonumber(last) + WIN - now)
  elseif ALG == 1 then
    return now - (now % WIN) + WIN - now
  end
  return math.max(0, (tonumber(redis.call('GET', W)) or 0) - now)
end

