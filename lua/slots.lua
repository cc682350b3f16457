-- slots.lua: the slots of a key's concurrency cap held by one node (see limits.lua's run):
-- renewed, while their calls run, or released when they end. Twin: memKey.slots.
-- KEYS, ARGV 1-6: see limits.lua.
-- ARGV: 7 'renew' or 'release'  8.. ids of the node's slots
-- Reply: renew: how many were still held (the others lapsed, and were not renewed);
--   release: how many tickets wait in the line (to wake the processors when any do).
local now = now_us()
if CONC == 0 then return 0 end
local n = 0
if ARGV[7] == 'renew' then
  for i = 8, #ARGV do
    if redis.call('ZSCORE', RUN, ARGV[i]) then
      redis.call('ZADD', RUN, I(now + SLOT_US), ARGV[i])
      n = n + 1
    end
  end
  if n > 0 then redis.call('PEXPIRE', RUN, ms(SLOT_US)) end
  return n
end
for i = 8, #ARGV do lim_release(ARGV[i]) end
return line_len()
