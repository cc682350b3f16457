-- broadcast.lua: publishes a wake-up that may make a key due earlier than its nodes scheduled it
-- (a recheck, a change of the runtime configuration) under the next number of the prefix's
-- count of such wake-ups, in the same step, so that a listener that finds a number missing
-- knows it lost one. The count lives as long as wake-ups keep coming.
-- KEYS: 1 the count (string)
-- ARGV: 1 the channel  2 the event  3 the count's time to live ms
-- Reply: the number given.
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], '#' .. n .. ' ' .. ARGV[2])
return n
