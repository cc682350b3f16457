-- line.lua: the helpers of the line, shared by every per-key script; follows limits.lua, whose
-- header describes KEYS and ARGV, and pause.lua.

local function line_len()
  return redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3]) + redis.call('LLEN', KEYS[4]) + redis.call('LLEN', KEYS[5])
end

-- A ticket is a msgpack array; its fields are at these positions, queue.Ticket's fields in order
-- (T_HANDLER only for a durable job, nil for a request with a cost or a tenant; T_COST only when
-- not 1 or with a tenant; T_TENANT, the tenant's name, and T_WEIGHT, its weight when not 1, only
-- with a tenant).
local T_ID, T_KEY, T_PRIORITY, T_ENQUEUED, T_DEADLINE, T_OWNER, T_HANDLER, T_COST = 1, 2, 3, 4, 5, 6, 7, 8
local T_TENANT, T_WEIGHT = 9, 10

-- The ticket a line entry holds, or nil when the entry is corrupt. The rule, also Go's (queue's
-- lineTicket): the entry is at most MAX_ENTRY bytes (cmsgpack reads any of those without
-- overflowing Lua's stack), is a msgpack array (its first byte says so: cmsgpack would read a
-- map as a table too) that cmsgpack reads, whose T_ID and T_OWNER are strings of 16 bytes, whose
-- T_DEADLINE is a number, whose T_HANDLER, when present, is a non-empty string, whose T_COST,
-- when present, is a whole number from 1 to 2^53, whose T_TENANT, when present, is a string of
-- 1 to 64 bytes and whose T_WEIGHT, when present, a whole number from 1 to 1000 (the line
-- reads neither: the admit names the tenant). In a line served in fair shares (see fair.lua)
-- the array is followed by two more values, its tenant's number in the line and its round,
-- whole numbers from 0 to 2^53 in their shortest msgpack forms, kept in t.TENANT and t.TAG,
-- with the bytes before them (the ticket its owner sent) in t.RAW; nothing else may follow.
-- The other fields are no business of the line's: the node that gets the grant checks them.
local MAX_ENTRY = 2048
local function whole(x, lo, hi) return type(x) == 'number' and x >= lo and x <= hi and x == math.floor(x) end
local function counted(...) return select('#', ...), ... end
local function decode(raw)
  local b = string.byte(raw, 1)
  if #raw > MAX_ENTRY or not b or not ((b >= 0x90 and b <= 0x9f) or b == 0xdc or b == 0xdd) then return nil end
  local nv, ok, t, tid, tag = counted(pcall(cmsgpack.unpack, raw))
  if not ok or type(t) ~= 'table' or type(t[T_ID]) ~= 'string' or #t[T_ID] ~= 16 or type(t[T_DEADLINE]) ~= 'number'
      or type(t[T_OWNER]) ~= 'string' or #t[T_OWNER] ~= 16 then
    return nil
  end
  local h = t[T_HANDLER]
  if h ~= nil and (type(h) ~= 'string' or h == '') then return nil end
  local c = t[T_COST]
  if c ~= nil and not whole(c, 1, 9007199254740992) then return nil end
  local tn, w = t[T_TENANT], t[T_WEIGHT]
  if tn ~= nil and (type(tn) ~= 'string' or tn == '' or #tn > 64) then return nil end
  if w ~= nil and not whole(w, 1, 1000) then return nil end
  t.RAW = raw
  if nv == 2 then return t end
  if nv ~= 4 or not whole(tid, 0, 9007199254740992) or not whole(tag, 0, 9007199254740992) then return nil end
  local enc = cmsgpack.pack(tid) .. cmsgpack.pack(tag)
  t.TENANT, t.TAG, t.RAW = tid, tag, string.sub(raw, 1, #raw - #enc)
  -- In their shortest forms: the bytes before them are the ticket alone.
  if string.sub(raw, -#enc) ~= enc then return nil end
  local n1, ok1 = counted(pcall(cmsgpack.unpack, t.RAW))
  if not ok1 or n1 ~= 2 then return nil end
  return t
end

-- The cost of ticket t.
local function cost_of(t) return t[T_COST] or 1 end

-- The cost of the tickets a ticket of priority prio waits behind (those of the higher
-- priorities, and the first pos of its own line), as far as the first UNITS_SCAN of them tell:
-- each ticket past those counts 1, the least it can cost, so that the fail-fast estimate stays
-- a lower bound (it never refuses a ticket that could make its deadline) at a bounded cost.
-- Twin: memKey.unitsAhead.
local UNITS_SCAN = 256
local function units_ahead(prio, pos)
  local units, left = 0, UNITS_SCAN
  for q = prio, 3 do
    local n = pos
    if q > prio then n = redis.call('LLEN', KEYS[2 + q]) end
    if left > 0 and n > 0 then
      local seen = redis.call('LRANGE', KEYS[2 + q], 0, math.min(left, n) - 1)
      for _, raw in ipairs(seen) do
        local t = decode(raw)
        if t then units = units + cost_of(t) else units = units + 1 end
      end
      left = left - #seen
      n = n - #seen
    end
    units = units + n
  end
  return units
end

local function count(name, n)
  redis.call('HINCRBY', STATS, name, n or 1)
  redis.call('PEXPIRE', STATS, STATS_TTL)
end

-- Keeps raw in the dead-letter list (the last 1000).
local function to_dlq(raw)
  redis.call('RPUSH', DLQ, raw)
  redis.call('LTRIM', DLQ, -1000, -1)
  redis.call('PEXPIRE', DLQ, STATS_TTL)
end

local function dead_letter(raw)
  to_dlq(raw)
  count('corrupt')
end

-- The pause in force on the key (pause.lua's encoding): its own pause and the external one (its
-- group's or everything's). Twin: memKey.paused.
local function paused(now)
  return pause_in_force(now, stored_pause(PAUSED), EXT_PAUSE)
end

-- Makes key live at least us more (TTLs only grow here, so the latest deadline wins).
local function extend_ttl(key, us)
  local want = math.ceil(us / 1000) + 1000
  if redis.call('PTTL', key) < want then redis.call('PEXPIRE', key, I(want)) end
end

-- Records that ticket t left the line without being served, so its owner learns it on claim.
local function mark_evicted(now, t)
  redis.call('ZREMRANGEBYSCORE', EVICTED, '-inf', I(now))
  redis.call('ZADD', EVICTED, I(math.max(t[T_DEADLINE], now + 1)), t[T_ID])
  extend_ttl(EVICTED, t[T_DEADLINE] - now)
end
