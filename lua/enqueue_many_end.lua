-- enqueue_many_end.lua: the end of enqueue_many.lua.
local replies = {}
for i = 12, 11 + 3 * tonumber(ARGV[11]), 3 do
  RAW, ID = ARGV[i], ARGV[i + 1]
  local reply = enqueue_job(ARGV[i + 2], 0)
  replies[#replies + 1] = reply
  if reply[1] == 3 or reply[1] == 4 then break end
end
return replies
