-- refund.lua: gives back to the window a grant that will not run (its caller left).
-- KEYS, ARGV 1-6: see limits.lua.
-- ARGV: 7 ticket id  8 granted at µs
-- Reply: 1.
lim_refund(now_us(), ARGV[7], tonumber(ARGV[8]))
count('refunded')
return 1
