#!/usr/bin/env bash
# Writes a copy of redis.conf with your own passwords (and namespace):
# the `#<sha256>` of the muster and agent users is replaced, the file keeps no
# plain password. Unset variables keep what the input file has.
#
#   MUSTER_REDIS_PASSWORD=… AGENT_REDIS_PASSWORD=… [MUSTER_NAMESPACE=…] \
#     bash scripts/redis-conf.sh OUTPUT [INPUT]
#
# Then point the compose files at it and give the clients the same passwords:
#   REDIS_CONF=./redis.local.conf MUSTER_REDIS_PASSWORD=… AGENT_REDIS_PASSWORD=… \
#     docker compose -f compose/agents.yaml up -d
# (REDIS_CONF is relative to the compose file's directory.)
set -euo pipefail
out=${1:?usage: redis-conf.sh OUTPUT [INPUT]  (env: MUSTER_REDIS_PASSWORD, AGENT_REDIS_PASSWORD, MUSTER_NAMESPACE)}
in=${2:-$(dirname "$0")/../redis.conf}

fail() {
  echo "redis-conf.sh: $*" >&2
  exit 1
}
[ -f "$in" ] || fail "$in: no such file"

# Passwords end up in redis://user:password@host URLs: keep them URL-safe.
check_password() {
  local var=$1 value=$2
  [ -n "$value" ] || fail "$var is empty"
  [ ${#value} -ge 12 ] || fail "$var: use at least 12 characters"
  [[ $value =~ ^[A-Za-z0-9._~-]+$ ]] || fail "$var: use only letters, digits and - . _ ~ (it goes into a redis:// URL)"
}

# Replaces the `#<sha256>` of `user NAME` with the hash of a new password.
set_hash() {
  local user=$1 password=$2 file=$3
  grep -qE "^user $user .*#[0-9a-f]{64}" "$file" || fail "$in: no line 'user $user … #<sha256> …'"
  local hash
  hash=$(printf %s "$password" | sha256sum | cut -d' ' -f1)
  sed -E -i "/^user $user /s/#[0-9a-f]{64}/#$hash/" "$file"
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cp "$in" "$tmp"
if [ -n "${MUSTER_REDIS_PASSWORD+x}" ]; then
  check_password MUSTER_REDIS_PASSWORD "$MUSTER_REDIS_PASSWORD"
  set_hash muster "$MUSTER_REDIS_PASSWORD" "$tmp"
fi
if [ -n "${AGENT_REDIS_PASSWORD+x}" ]; then
  check_password AGENT_REDIS_PASSWORD "$AGENT_REDIS_PASSWORD"
  set_hash agent "$AGENT_REDIS_PASSWORD" "$tmp"
fi
if [ -n "${MUSTER_NAMESPACE:-}" ] && [ "$MUSTER_NAMESPACE" != muster ]; then
  ns=$MUSTER_NAMESPACE
  [[ $ns =~ ^[A-Za-z0-9._:-]{1,128}$ ]] || fail "MUSTER_NAMESPACE: use 1-128 of A-Z a-z 0-9 . _ - :"
  sed -E -i "/^user (muster|agent) /{s/~muster:/~$ns:/g; s/&muster:events/\&$ns:events/g}" "$tmp"
fi
cp "$tmp" "$out"
echo "wrote $out"
