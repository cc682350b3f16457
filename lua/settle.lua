-- settle.lua: a granted request's real cost, known after it ran. Every rate that counts units
-- takes the difference: less than charged goes back as of the grant's time, more is charged now
-- (see lim_settle). Twin: memKey.settle.
-- KEYS, ARGV 1-6: see limits.lua.
-- ARGV: 7 ticket id  8 granted at µs  9 cost charged  10 actual cost
-- Reply: 1
local charged, actual = tonumber(ARGV[9]), tonumber(ARGV[10])
lim_settle(now_us(), ARGV[7], tonumber(ARGV[8]), charged, actual)
count('settled')
if actual < charged then count('units_returned', charged - actual) end
if actual > charged then count('units_over', actual - charged) end
return 1
