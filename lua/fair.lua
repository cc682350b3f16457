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
-- The state of the key's fair lines, KEYS[11] (HASH, one for the four lines): 'v<q>' the round
-- of the latest ticket granted in line q (present while line q is fair); 'seq' the last number
-- given; 'id:<tenant>' a tenant's number and 'nm:<number>' its name; 'f<q>:<number>' where its
-- next ticket in line q starts (units); 'n<q>:<number>' how many it has waiting there. A
-- tenant's fields go with its last ticket; a line's with its last entry, the hash with the
-- last fair line. Rounds and numbers stay small (a byte or three each): they start afresh when
-- the lines empty.

-- The helpers are made by fair_lib, on the first call that needs them, as fields of one
-- table: a script runs its whole text on every call, and a request granted by the coalesced
-- admit, or a grant step on lines of no tenant, does not pay for defining them; and a script's
-- main function may hold no more than 200 locals.
local fair_made

-- Each of the three adds its part of the helpers to the table fair.
local function fair_lib_place(fair)
  -- A round in units: weights 1 to 10 divide it, so their shares are exact.
  fair.UNIT = 2520

  -- Whether line q is served in fair shares (its state has its round), given its length n.
  function fair.on(q, n) return n > 0 and redis.call('HEXISTS', FAIR, 'v' .. q) == 1 end

  -- The round an entry holds, -1 when none (a line being made fair: see fair.begin).
  function fair.entry_tag(raw)
    local t = raw and decode(raw)
    return (t and t.TAG) or -1
  end

  -- How far a ticket of round tag goes in line q: the number of entries of a round up to its own.
  function fair.position(q, tag)
    local line = KEYS[2 + q]
    local n = redis.call('LLEN', line)
    if n == 0 or fair.entry_tag(redis.call('LINDEX', line, -1)) <= tag then return n end
    local lo, hi = 0, n - 1 -- the entry at hi has a later round
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if fair.entry_tag(redis.call('LINDEX', line, mid)) <= tag then lo = mid + 1 else hi = mid end
    end
    return lo
  end

  -- tenant's number, nil when it has none ('' is 0).
  function fair.tenant_id(tenant)
    if tenant == '' then return 0 end
    return tonumber(redis.call('HGET', FAIR, 'id:' .. tenant))
  end

  -- Where a ticket of tenant (nil: none) would join line q of length n, fair already when on,
  -- at its head when head, given that it joins in fair shares (fair_place decides that):
  -- {true, tag (its round), position, on, n, where in units its round starts it}. Reads only.
  function fair.place(q, tenant, head, n, on)
    local v = on and tonumber(redis.call('HGET', FAIR, 'v' .. q)) or 0
    if head then
      local first = on and fair.entry_tag(redis.call('LINDEX', KEYS[2 + q], 0)) or 0
      return {true, math.max(0, math.min(v, first)), 0, on, n}
    end
    local id = on and fair.tenant_id(tenant or '')
    local start = math.max(v * fair.UNIT, id and tonumber(redis.call('HGET', FAIR, 'f' .. q .. ':' .. id)) or 0)
    local tag = math.floor(start / fair.UNIT)
    if not on then return {true, tag, math.min(n, 1), on, n, start} end -- after the first of the untagged (fair.begin)
    return {true, tag, fair.position(q, tag), on, n, start}
  end

  -- How many units of rounds a ticket of cost c for a tenant of weight w takes.
  function fair.tag_span(c, w) return math.max(1, math.floor(fair.UNIT * c / w)) end

  -- The bytes after a ticket in a fair line: its tenant's number and its round.
  function fair.entry_suffix(id, tag) return cmsgpack.pack(id) .. cmsgpack.pack(tag) end

  -- Drops line q's fields from the state: its round, and its tenants' credits and counts (left
  -- only by entries that lapsed or were corrupt); the hash goes when no line is fair.
  function fair.clear(q)
    local gone = {'v' .. q}
    local pf, pn = 'f' .. q .. ':', 'n' .. q .. ':'
    for _, f in ipairs(redis.call('HKEYS', FAIR)) do
      local head = string.sub(f, 1, #pf)
      if head == pf or head == pn then gone[#gone + 1] = f end
    end
    redis.call('HDEL', FAIR, unpack(gone))
    if redis.call('HLEN', FAIR) > 0 then
      local left = redis.call('HMGET', FAIR, 'v0', 'v1', 'v2', 'v3')
      if not (left[1] or left[2] or left[3] or left[4]) then redis.call('DEL', FAIR) end
    end
  end
end

local function fair_lib_push(fair)
  -- Makes line q fair: its entries, none tagged yet and none of a tenant, become the tenant ''s,
  -- tagged with their rounds in their order.
  function fair.begin(q)
    local line = KEYS[2 + q]
    local all = redis.call('LRANGE', line, 0, -1)
    local units, out = 0, {}
    for i, raw in ipairs(all) do
      local t = decode(raw)
      out[i] = raw .. fair.entry_suffix(0, math.floor(units / fair.UNIT))
      units = units + fair.tag_span(t and cost_of(t) or 1, 1)
    end
    fair.clear(q)
    redis.call('HSET', FAIR, 'v' .. q, 0)
    if #all > 0 then
      local ttl = redis.call('PTTL', line)
      redis.call('DEL', line)
      for i = 1, #out, 1000 do redis.call('RPUSH', line, unpack(out, i, math.min(#out, i + 999))) end
      if ttl > 0 then redis.call('PEXPIRE', line, ttl) end
      redis.call('HSET', FAIR, 'f' .. q .. ':0', units, 'n' .. q .. ':0', #all)
    end
  end

  -- Puts ticket raw, of tenant (nil: none) of weight w and of cost c, in fair line q where
  -- place (fair_place's) says, alive until deadline_in µs from now; stale: the line changed
  -- since fair_place read it (an entry dropped), so its place is found again. Returns what
  -- follows the ticket in its entry.
  function fair.push(q, raw, tenant, w, c, head, place, deadline_in, stale)
    local line = KEYS[2 + q]
    local n = place[5]
    if stale then
      n = redis.call('LLEN', line)
      if not fair.on(q, n) then fair.begin(q) end
    elseif not place[4] then
      fair.begin(q)
    end
    tenant = tenant or ''
    local id = fair.tenant_id(tenant)
    if not id then
      id = redis.call('HINCRBY', FAIR, 'seq', 1)
      redis.call('HSET', FAIR, 'id:' .. tenant, id, 'nm:' .. id, tenant)
    end
    local tag = place[2]
    local suffix = fair.entry_suffix(id, tag)
    local e = raw .. suffix
    if head then
      redis.call('LPUSH', line, e)
    else
      redis.call('HSET', FAIR, 'f' .. q .. ':' .. id, place[6] + fair.tag_span(c, w))
      local pos = place[3]
      if stale then pos = fair.position(q, tag) end
      if pos >= n then
        redis.call('RPUSH', line, e)
      else
        redis.call('LINSERT', line, 'BEFORE', redis.call('LINDEX', line, pos), e)
      end
    end
    redis.call('HINCRBY', FAIR, 'n' .. q .. ':' .. id, 1)
    extend_ttl(line, deadline_in)
    extend_ttl(FAIR, deadline_in)
    return suffix
  end
end

local function fair_lib_left(fair)
  -- Notes that ticket t left line q, granted or not: its tenant has one fewer waiting (its state
  -- goes with its last), the round served moves to a granted ticket's, and the state goes with
  -- the line's last entry.
  function fair.left(q, t, granted)
    local empty = redis.call('LLEN', KEYS[2 + q]) == 0
    if not t or not t.TAG then -- a corrupt entry, which a fair line may hold too, or an untagged one
      if empty and redis.call('HEXISTS', FAIR, 'v' .. q) == 1 then fair.clear(q) end
      return
    end
    local id = t.TENANT
    if redis.call('HINCRBY', FAIR, 'n' .. q .. ':' .. id, -1) <= 0 then
      redis.call('HDEL', FAIR, 'n' .. q .. ':' .. id, 'f' .. q .. ':' .. id)
      local other = redis.call('HMGET', FAIR, 'n0:' .. id, 'n1:' .. id, 'n2:' .. id, 'n3:' .. id)
      if id ~= 0 and not (other[1] or other[2] or other[3] or other[4]) then
        local name = redis.call('HGET', FAIR, 'nm:' .. id)
        redis.call('HDEL', FAIR, 'nm:' .. id)
        if name then redis.call('HDEL', FAIR, 'id:' .. name) end
      end
    end
    if empty then
      fair.clear(q)
    elseif granted and t.TAG > (tonumber(redis.call('HGET', FAIR, 'v' .. q)) or 0) then
      redis.call('HSET', FAIR, 'v' .. q, t.TAG)
    end
  end

  -- How many tickets tenant has waiting in the key's lines.
  function fair.waiting(tenant)
    local id = fair.tenant_id(tenant)
    if not id then return 0 end
    local n = 0
    for _, c in ipairs(redis.call('HMGET', FAIR, 'n0:' .. id, 'n1:' .. id, 'n2:' .. id, 'n3:' .. id)) do
      n = n + (tonumber(c) or 0)
    end
    return n
  end
end

local function fair_lib()
  if fair_made then return fair_made end
  local fair = {}
  fair_lib_place(fair)
  fair_lib_push(fair)
  fair_lib_left(fair)
  fair_made = fair
  return fair
end

-- Where a ticket of tenant (nil: none) would join line q: see fair.place. A ticket of no tenant
-- in a line served first come first served does not need the helpers.
-- {fair, tag, position, the line is fair already, its length, start}; fair is false for a line
-- served first come first served (tag nil). n: the line's length, when the caller has read it;
-- flag: whether the line's state has its round, when the caller knows it.
local function fair_place(q, tenant, head, n, flag)
  n = n or redis.call('LLEN', KEYS[2 + q])
  local on = false
  if n > 0 then
    if flag == nil then flag = redis.call('HEXISTS', FAIR, 'v' .. q) == 1 end
    on = flag
  end
  if not on and not tenant then
    if head then return {false, nil, 0, false, n} end
    return {false, nil, n, false, n}
  end
  return fair_lib().place(q, tenant, head, n, on)
end

-- Puts ticket raw in line q where place says (see fair.push; in a line served first come
-- first served, at its head or tail), alive until deadline_in µs from now. Returns what
-- follows the ticket in its entry.
local function line_push(q, raw, tenant, w, c, head, place, deadline_in, stale)
  if place[1] then return fair_lib().push(q, raw, tenant, w, c, head, place, deadline_in, stale) end
  local line = KEYS[2 + q]
  if head then redis.call('LPUSH', line, raw) else redis.call('RPUSH', line, raw) end
  extend_ttl(line, deadline_in)
  return ''
end

-- Notes that ticket t left line q, granted or not: see fair.left. An untagged ticket (of a line
-- served first come first served) leaves nothing to note.
local function line_left(q, t, granted)
  if t and not t.TAG then return end
  fair_lib().left(q, t, granted)
end

-- How many tickets tenant has waiting in the key's lines.
local function tenant_waiting(tenant) return fair_lib().waiting(tenant) end
