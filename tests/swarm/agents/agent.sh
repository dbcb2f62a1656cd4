# A Swarm task's agent in busybox sh: pushes the muster ready signal
# (protocol ASSERT, one EVAL in plain RESP over nc) under $MUSTER_AGENT:
# `starting`, then after $READY_AFTER seconds `ready`, refreshed every 5 s.
ns="${MUSTER_NAMESPACE:-muster}"
a="$MUSTER_AGENT"
script="$(cat /assert.lua)"
resp() {
  printf '*%d\r\n' "$#"
  for arg in "$@"; do printf '$%d\r\n%s\r\n' "${#arg}" "$arg"; done
}
assert() {
  v="{\"status\":\"$1\",\"since\":$since}"
  e="{\"agent\":\"$a\",\"status\":\"$1\",\"since\":$since,\"ttl_ms\":30000}"
  { resp EVAL "$script" 2 "$ns:ready:$a" "$ns:notready:$a" "$v" 30000 "$ns:events:$a" "$e"; resp QUIT; } \
    | nc "$REDIS_HOST" "${REDIS_PORT:-6379}"
}
since="$(date +%s)000"
assert starting
sleep "$READY_AFTER"
since="$(date +%s)000"
while true; do
  assert ready
  sleep 5
done
