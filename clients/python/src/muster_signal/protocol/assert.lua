-- muster ready-signal protocol v1: ASSERT (starting, ready, stopping, heartbeat).
-- Sets the ready key unless it already holds exactly this value (then only
-- refreshes its TTL). A change also deletes the not-ready key and publishes
-- the event, all in one atomic step. Returns 1 when something changed.
-- KEYS[1] {ns}:ready:{agent}  KEYS[2] {ns}:notready:{agent}
-- ARGV[1] value JSON  ARGV[2] TTL ms  ARGV[3] {ns}:events  ARGV[4] event JSON
-- pcall: a key of another type (someone ran LPUSH on it) is overwritten by
-- the SET below instead of failing every write with WRONGTYPE.
local cur = redis.pcall('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
