#!/usr/bin/env bash
# The main job: bring the example agent stack (compose/demo.yaml) up under
# muster on a fresh machine, with no registry. Installs what is missing,
# builds the images locally, starts the stack in dependency order, serves the
# health endpoint in the background and prints `muster status`.
# Redis runs with redis.conf: muster connects as its `muster` user.
# Stop it with the two commands the script prints at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-test-images.sh
echo "demo: building muster"
cargo build --quiet --bin muster
bash scripts/build-muster-image.sh target/debug/muster muster:dev
# The Python agent's image: the local Debian base (debootstrap, about 90 s the
# first time) with Debian's python3 and python3-redis and the muster_signal package.
bash scripts/build-base-image.sh
bash scripts/build-python-agent-image.sh

muster=target/debug/muster
export MUSTER_REDIS_URL=redis://muster:${MUSTER_REDIS_PASSWORD:-change-me-muster}@127.0.0.1:${DEMO_REDIS_PORT:-16379}
export MUSTER_PROBE_ADDRESS=host
# No MUSTER_LISTEN: the supervisor takes the port derived from the project and
# namespace (127.0.0.1:28700-29699), and `status` / `check` find it by the same
# rule, so the demo never answers for another project's muster. Set
# MUSTER_LISTEN to pin an address (e.g. 127.0.0.1:8686).
args=(-f compose/demo.yaml -p muster-demo)

"$muster" "${args[@]}" up --wait-timeout 3m
# Keep supervising and serving /healthz, /readyz, /status, /metrics and the page.
# A supervisor left by an earlier run is stopped by its pid (and only if it is one).
pidfile=/tmp/muster-demo-serve.pid
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  if { tr '\0' ' ' <"/proc/$old/cmdline"; } 2>/dev/null | grep -q -- "-p muster-demo serve"; then
    kill "$old" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  fi
fi
nohup "$muster" "${args[@]}" serve >/tmp/muster-demo-serve.log 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 1 50); do
  "$muster" "${args[@]}" check --self >/dev/null 2>&1 && break
  sleep 0.2
done
sleep 2
"$muster" "${args[@]}" status
echo
url=$(grep -o 'http://[^ ]*/' /tmp/muster-demo-serve.log | head -n 1)
echo "status page: ${url:-see /tmp/muster-demo-serve.log}   (supervisor log: /tmp/muster-demo-serve.log)"
echo "stop:        kill \$(cat $pidfile); $muster ${args[*]} down"
