-- fair.lua: fair shares between tenants within a line (follows line.lua; twin: queue's
-- memFair). A line holding no ticket of a tenant is today's: first come first served, no state.
-- Once a ticket with a tenant joins line q, the line is served by weighted deficit round robin
-- with a quantum of the tenant's weight in cost units a round: every entry carries, after its
-- ticket, its tenant's number in the line and its round (see decode); the line is kept in order
-- of rounds (within a round, first come first served), and the grant step still serves it from
-- its head. A tenant's tickets take the rounds its credit reaches: each costs cost / weight
-- rounds, counted in units of 1/TAG_UNIT of a round, from where its previous one ended, or from
-- the round being served when that is later (a tenant that had nothing waiting joins the
-- current round). So a tenant with 10,000 waiting delays another tenant's single request by at
-- most one round — each tenant's weight in requests —, not 10,000. The tenant is not in the
-- ticket: the admit names it (ARGV), the line keeps a number for it (0 for the tickets of no
-- tenant, the tenant ''), so an entry grows by two or four bytes, not by the tenant's name.
-- The line's state, KEYS[11 + q] (HASH): 'v' the round of the latest ticket granted; 'seq' the
-- last number given; 'id:<tenant>' its number and 'nm:<number>' its name; 'f:<number>' where its
-- next ticket starts (units); 'n:<number>' how many it has waiting. A tenant's fields go with
-- its last ticket; the whole state with the line. Rounds and numbers stay small (a byte or
-- three each): the state starts afresh when the line empties.

-- A round in units: weights 1 to 10 divide it, so their shares are exact.
local TAG_UNIT = 2520

local function fair_key(q) return KEYS[11 + q] end

-- The round an entry holds, -1 when none (a line being made fair: see fair_begin).
local function entry_tag(raw)
  local t = raw and decode(raw)
  return (t and t.TAG) or -1
end

-- How far a ticket of round tag goes in line q: the number of entries of a round up to its own.
local function fair_position(q, tag)
  local line = KEYS[2 + q]
  local n = redis.call('LLEN', line)
  if n == 0 or entry_tag(redis.call('LINDEX', line, -1)) <= tag then return n end
  local lo, hi = 0, n - 1 -- the entry at hi has a later round
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if entry_tag(redis.call('LINDEX', line, mid)) <= tag then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- tenant's number in the state fk, nil when it has none ('' is 0).
local function tenant_id(fk, tenant)
  if tenant == '' then return 0 end
  return tonumber(redis.call('HGET', fk, 'id:' .. tenant))
end

-- Where a ticket of tenant (nil: none) would join line q (at its head when head): {fair, tag
-- (its round), position, the line is fair already, its length, where in units its round starts
-- it}; fair is false for a line served first come first served (tag nil). Reads only.
local function fair_place(q, tenant, head)
  local fk = fair_key(q)
  local n = redis.call('LLEN', KEYS[2 + q])
  local on = n > 0 and redis.call('EXISTS', fk) == 1
  if not on and not tenant then
    if head then return {false, nil, 0, on, n} end
    return {false, nil, n, on, n}
  end
  local v = on and tonumber(redis.call('HGET', fk, 'v')) or 0
  if head then
    local first = on and entry_tag(redis.call('LINDEX', KEYS[2 + q], 0)) or 0
    return {true, math.max(0, math.min(v, first)), 0, on, n}
  end
  local id = on and tenant_id(fk, tenant or '')
  local start = math.max(v * TAG_UNIT, id and tonumber(redis.call('HGET', fk, 'f:' .. id)) or 0)
  local tag = math.floor(start / TAG_UNIT)
  if not on then return {true, tag, math.min(n, 1), on, n, start} end -- after the first of the untagged (fair_begin)
  return {true, tag, fair_position(q, tag), on, n, start}
end

-- How many units of rounds a ticket of cost c for a tenant of weight w takes.
local function tag_span(c, w) return math.max(1, math.floor(TAG_UNIT * c / w)) end

-- The bytes after a ticket in a fair line: its tenant's number and its round.
local function entry_suffix(id, tag) return cmsgpack.pack(id) .. cmsgpack.pack(tag) end

-- Makes line q fair: its entries, none tagged yet and none of a tenant, become the tenant ''s,
-- tagged with their rounds in their order.
local function fair_begin(q)
  local line, fk = KEYS[2 + q], fair_key(q)
  local all = redis.call('LRANGE', line, 0, -1)
  local units, out = 0, {}
  for i, raw in ipairs(all) do
    local t = decode(raw)
    out[i] = raw .. entry_suffix(0, math.floor(units / TAG_UNIT))
    units = units + tag_span(t and cost_of(t) or 1, 1)
  end
  redis.call('DEL', fk)
  redis.call('HSET', fk, 'v', 0)
  if #all > 0 then
    local ttl = redis.call('PTTL', line)
    redis.call('DEL', line)
    for i = 1, #out, 1000 do redis.call('RPUSH', line, unpack(out, i, math.min(#out, i + 999))) end
    if ttl > 0 then redis.call('PEXPIRE', line, ttl) end
    redis.call('HSET', fk, 'f:0', units, 'n:0', #all)
  end
end

-- Puts ticket raw, of tenant (nil: none) of weight w and of cost c, in line q where place
-- (fair_place's) says, alive until deadline_in µs from now; stale: the line changed since
-- fair_place read it (an entry dropped), so its place is found again. Returns what follows
-- the ticket in its entry ('' in a line served first come first served).
local function line_push(q, raw, tenant, w, c, head, place, deadline_in, stale)
  local line = KEYS[2 + q]
  if not place[1] then
    if head then redis.call('LPUSH', line, raw) else redis.call('RPUSH', line, raw) end
    extend_ttl(line, deadline_in)
    return ''
  end
  local fk = fair_key(q)
  local n = place[5]
  if stale then
    n = redis.call('LLEN', line)
    if not (n > 0 and redis.call('EXISTS', fk) == 1) then fair_begin(q) end
  elseif not place[4] then
    fair_begin(q)
  end
  tenant = tenant or ''
  local id = tenant_id(fk, tenant)
  if not id then
    id = redis.call('HINCRBY', fk, 'seq', 1)
    redis.call('HSET', fk, 'id:' .. tenant, id, 'nm:' .. id, tenant)
  end
  local tag = place[2]
  local suffix = entry_suffix(id, tag)
  local e = raw .. suffix
  if head then
    redis.call('LPUSH', line, e)
  else
    redis.call('HSET', fk, 'f:' .. id, place[6] + tag_span(c, w))
    local pos = place[3]
    if stale then pos = fair_position(q, tag) end
    if pos >= n then
      redis.call('RPUSH', line, e)
    else
      redis.call('LINSERT', line, 'BEFORE', redis.call('LINDEX', line, pos), e)
    end
  end
  redis.call('HINCRBY', fk, 'n:' .. id, 1)
  extend_ttl(line, deadline_in)
  extend_ttl(fk, deadline_in)
  return suffix
end

-- Notes that ticket t left line q, granted or not: its tenant has one fewer waiting (its state
-- goes with its last), the round served moves to a granted ticket's, and the state goes with
-- the line's last entry.
local function line_left(q, t, granted)
  local fk = fair_key(q)
  if not t then -- a corrupt entry, which a fair line may hold too
    if redis.call('LLEN', KEYS[2 + q]) == 0 then redis.call('DEL', fk) end
    return
  end
  if not t.TAG then return end
  local id = t.TENANT
  if redis.call('HINCRBY', fk, 'n:' .. id, -1) <= 0 then
    local name = redis.call('HGET', fk, 'nm:' .. id)
    redis.call('HDEL', fk, 'n:' .. id, 'f:' .. id, 'nm:' .. id)
    if name then redis.call('HDEL', fk, 'id:' .. name) end
  end
  if granted and t.TAG > (tonumber(redis.call('HGET', fk, 'v')) or 0) then redis.call('HSET', fk, 'v', t.TAG) end
  if redis.call('LLEN', KEYS[2 + q]) == 0 then redis.call('DEL', fk) end
end

-- How many tickets tenant has waiting in the key's lines.
local function tenant_waiting(tenant)
  local n = 0
  for q = 0, 3 do
    local fk = fair_key(q)
    local id = tenant_id(fk, tenant)
    if id then n = n + (tonumber(redis.call('HGET', fk, 'n:' .. id)) or 0) end
  end
  return n
end
