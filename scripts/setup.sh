#!/usr/bin/env bash
# Installs and starts what muster's tests and example stack need on a fresh
# Debian machine: redis-server, nats-server, busybox-static (for locally built
# test images) and a Docker engine. Idempotent: skips what is already there.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # tests/probe/https.rs makes its CA and serves TLS with it
command -v docker >/dev/null 2>&1 || need+=(docker.io)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Debian's redis-server package starts a system Redis on 6379; the tests start
# their own servers on free ports, so that one is harmless either way.

if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd"
  command -v dockerd >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; }
  nohup dockerd >/tmp/muster-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start, see /tmp/muster-dockerd.log" >&2; exit 1; }
fi
echo "setup: redis-server $(redis-server --version | awk '{print $3}'), nats-server $(nats-server --version 2>&1 | awk '{print $2}'), docker $(docker version --format '{{.Server.Version}}')"
