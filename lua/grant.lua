-- grant.lua: the processor's step for one key. Refunds grants their remote owners never claimed,
-- drops expired and corrupt tickets, then grants up to a batch of waiting tickets, highest
-- priority first and first come first served within one, as far as pause and limit allow.
-- KEYS, ARGV 1-6: see limits.lua.
-- ARGV: 7 this node's id  8 batch size  9 claim timeout µs  10.. ids of nodes known dead (their
--       tickets leave the line, their unclaimed grants are refunded at once)
-- Reply: {paused 0/1, now µs, next µs (0: nothing to do, -1: paused with no end), {raw tickets
--   granted to this node}, {ids of other nodes whose tickets were granted}}
local NODE, BATCH, CLAIM = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local MAX_DROPS = 1000

local dead = {}
local any_dead = false
for i = 10, #ARGV do dead[ARGV[i]] = true; any_dead = true end

local now = now_us()
local stale
if any_dead then
  stale = redis.call('ZRANGE', GRANTED, 0, 999, 'WITHSCORES')
else
  stale = redis.call('ZRANGEBYSCORE', GRANTED, '-inf', I(now - CLAIM), 'WITHSCORES', 'LIMIT', 0, 1000)
end
for i = 1, #stale, 2 do
  local t = decode(stale[i])
  local at = tonumber(stale[i + 1])
  if at <= now - CLAIM or not t or dead[t[6]] then
    redis.call('ZREM', GRANTED, stale[i])
    if t then lim_refund(now, t[1], at) end
    count('refunded')
  end
end

local p = paused(now)
local free = 0
if not p then free = lim_free(now, true) end
local mine, owners, seen, ids = {}, {}, {}, {}
local n, drops = 0, 0
for q = 5, 2, -1 do
  local line = KEYS[q]
  while drops < MAX_DROPS do
    local raw = redis.call('LINDEX', line, 0)
    if not raw then break end
    local t = decode(raw)
    if not t then
      redis.call('LPOP', line)
      dead_letter(raw)
      drops = drops + 1
    elseif t[5] <= now then
      redis.call('LPOP', line)
      count('expired')
      drops = drops + 1
    elseif dead[t[6]] then
      redis.call('LPOP', line)
      count('abandoned')
      drops = drops + 1
    elseif free <= 0 or n >= BATCH then
      break
    else
      redis.call('LPOP', line)
      n = n + 1
      free = free - 1
      ids[n] = t[1]
      if t[6] == NODE then
        mine[#mine + 1] = raw
      else
        redis.call('ZADD', GRANTED, I(now), raw)
        if not seen[t[6]] then seen[t[6]] = true; owners[#owners + 1] = t[6] end
      end
    end
  end
end

if n > 0 then
  lim_record(now, ids)
  count('granted', n)
  if #owners > 0 then redis.call('PEXPIRE', GRANTED, ms(2 * CLAIM)) end
end

local next = 0
if line_len() > 0 then
  if p == 0 then next = -1
  elseif p then next = p
  elseif free > 0 or drops >= MAX_DROPS then next = now
  else next = lim_slot(now, 1, 0) end
end
local oldest = redis.call('ZRANGE', GRANTED, 0, 0, 'WITHSCORES')[2]
if oldest then
  local due = tonumber(oldest) + CLAIM
  if next <= 0 or due < next then next = due end
end
local pz = 0
if p then pz = 1 end
return {pz, now, next, mine, owners}
