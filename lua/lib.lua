-- lib.lua: prepended to every per-key script; the algorithms several scripts share live here only.
--
-- KEYS (every per-key script, all with the same {hash tag}):
--   1 w (window state)  2..5 q:0..q:3 (lines, priority low..critical)  6 granted (ZSET raw ticket -> grant µs)
--   7 paused (string: until µs, 0 = forever)  8 stats (HASH)  9 dlq (LIST)  10 evicted (ZSET id -> deadline µs)
-- ARGV (every per-key script): 1 algorithm (0 sliding log, 1 fixed window, 2 GCRA)  2 max  3 window µs
--   4 burst (GCRA)  5 stats TTL ms  6 external pause (0 none, -1 forever, else until µs)
-- Times are µs of Redis server time. Numbers handed to redis.call go through I(), because Lua
-- would print a 16-digit number in exponent form.
local W, GRANTED, PAUSED, STATS, DLQ, EVICTED = KEYS[1], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local ALG, MAX, WIN = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local BURST, STATS_TTL, EXT_PAUSE = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local EMIT = math.ceil(WIN / MAX) -- GCRA emission interval, rounded up: never faster than the limit
local TAU = EMIT * BURST          -- GCRA bucket depth in µs

local function I(x) return string.format('%d', x) end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function ms(us) return I(math.max(1, math.ceil(us / 1000))) end

local function line_len()
  return redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3]) + redis.call('LLEN', KEYS[4]) + redis.call('LLEN', KEYS[5])
end

-- A ticket is a msgpack array {id, key, priority, enqueued, deadline, owner}; nil when corrupt.
local function decode(raw)
  local ok, t = pcall(cmsgpack.unpack, raw)
  if not ok or type(t) ~= 'table' or type(t[1]) ~= 'string' or #t[1] ~= 16 or type(t[5]) ~= 'number'
      or type(t[6]) ~= 'string' or #t[6] ~= 16 then
    return nil
  end
  return t
end

local function count(name, n)
  redis.call('HINCRBY', STATS, name, n or 1)
  redis.call('PEXPIRE', STATS, STATS_TTL)
end

local function dead_letter(raw)
  redis.call('RPUSH', DLQ, raw)
  redis.call('LTRIM', DLQ, -1000, -1)
  redis.call('PEXPIRE', DLQ, STATS_TTL)
  count('corrupt')
end

-- The pause in force: false, or 0 (forever) or the µs it lasts until. The key's own pause and
-- the external one (group or global) both count; the later end wins.
local function paused(now)
  local own = redis.call('GET', PAUSED)
  local p = false
  if own then
    own = tonumber(own)
    if own == 0 or own > now then p = own end
  end
  if EXT_PAUSE == -1 then return 0 end
  if EXT_PAUSE > now and p ~= 0 and (not p or EXT_PAUSE > p) then p = EXT_PAUSE end
  return p
end

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
    if tonumber(v[1]) == now - (now % WIN) then used = tonumber(v[2]) or 0 else used = 0 end
  else
    local tat = math.max(tonumber(redis.call('GET', W)) or 0, now)
    return math.max(0, math.min(BURST, math.floor((now + TAU - tat) / EMIT)))
  end
  return math.max(0, MAX - used)
end

-- Records n grants at now (ids: their sliding-log members) and re-applies the window's TTL.
local function lim_record(now, ids)
  if ALG == 0 then
    local args = {}
    for i, id in ipairs(ids) do args[2 * i - 1] = I(now); args[2 * i] = id end
    redis.call('ZADD', W, unpack(args))
    redis.call('PEXPIRE', W, ms(WIN))
  elseif ALG == 1 then
    local start = now - (now % WIN)
    if tonumber(redis.call('HGET', W, 's')) == start then
      redis.call('HINCRBY', W, 'n', #ids)
    else
      redis.call('HSET', W, 's', I(start), 'n', #ids)
    end
    redis.call('PEXPIRE', W, ms(start + WIN - now))
  else
    local tat = math.max(tonumber(redis.call('GET', W)) or 0, now) + EMIT * #ids
    redis.call('SET', W, I(tat), 'PX', ms(tat - now))
  end
end

-- Gives back one grant made at granted_at for id.
local function lim_refund(now, id, granted_at)
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

-- Makes key live at least us more (TTLs only grow here, so the latest deadline wins).
local function extend_ttl(key, us)
  local want = math.ceil(us / 1000) + 1000
  if redis.call('PTTL', key) < want then redis.call('PEXPIRE', key, I(want)) end
end

-- Records that ticket t left the line without being served, so its owner learns it on claim.
local function mark_evicted(now, t)
  redis.call('ZREMRANGEBYSCORE', EVICTED, '-inf', I(now))
  redis.call('ZADD', EVICTED, I(math.max(t[5], now + 1)), t[1])
  extend_ttl(EVICTED, t[5] - now)
end
