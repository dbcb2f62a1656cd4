-- muster ready-signal protocol v1: NOT_READY.
-- Deletes the ready key and stores the reason. Publishes the event when the
-- ready key existed or the reason changed. Returns 1 when it published.
-- KEYS[1] {ns}:ready:{agent}  KEYS[2] {ns}:notready:{agent}
-- ARGV[1] reason JSON  ARGV[2] reason TTL ms  ARGV[3] {ns}:events  ARGV[4] event JSON
local existed = redis.call('DEL', KEYS[1])
-- pcall: a not-ready key of another type reads as no reason (SET replaces it).
local old = redis.pcall('GET', KEYS[2])
if type(old) == 'table' then old = false end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if existed == 1 or old ~= ARGV[1] then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
