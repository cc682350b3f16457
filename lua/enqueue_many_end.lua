-- enqueue_many_end.lua: the end of enqueue_many.lua.
local replies = {}
local last = 11 + 3 * tonumber(ARGV[11])
local run_at = tonumber(ARGV[last + 1]) or 0
for i = 12, last, 3 do
  RAW, ID = ARGV[i], ARGV[i + 1]
  -- A µs apart, so that the jobs join their line in the order given.
  local reply = enqueue_job(ARGV[i + 2], run_at > 0 and run_at + (i - 12) / 3 or 0)
  replies[#replies + 1] = reply
  if reply[1] == 3 or reply[1] == 4 then break end
end
return replies
