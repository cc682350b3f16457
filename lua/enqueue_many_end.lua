-- enqueue_many_end.lua: the end of enqueue_many.lua.
local replies = {}
local run_at = tonumber(ARGV[JOBS_END + 1]) or 0
for i = 12, JOBS_END, 4 do
  RAW, ID, DEADLINE = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3])
  -- A µs apart, so that the jobs join their line in the order given.
  local reply = enqueue_job(ARGV[i + 2], run_at > 0 and run_at + (i - 12) / 4 or 0)
  replies[#replies + 1] = reply
  if not EVERY and (reply[1] == 3 or reply[1] == 4) then break end
end
return replies
