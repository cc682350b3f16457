-- enqueue_end.lua: the end of enqueue.lua.
local reply = line_admit()
if reply[1] == 2 then
  redis.call('HSET', JOBS, ID, ARGV[14])
  extend_ttl(JOBS, DEADLINE - now + 60000000)
end
return reply
