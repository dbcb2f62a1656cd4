#!/usr/bin/env bash
# Renders the health endpoint's status page in headless Chromium and writes
# docs/status-page.png. Serves a populated, changing StateStore through
# examples/status_page_demo.rs on a free loopback port.
#
#   scripts/screenshot-status-page.sh [OUTPUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/status-page.png}"
port="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"

cargo build --quiet --example status_page_demo
./target/debug/examples/status_page_demo "127.0.0.1:${port}" >/dev/null &
demo=$!
trap 'kill "$demo" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:${port}/livez" && break
  sleep 0.1
done
# Let a few simulated probe rounds happen (progress text, probe latencies).
sleep "${SETTLE:-3}"

chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size=1200,800 --screenshot="$out" "http://127.0.0.1:${port}/" 2>/dev/null
echo "wrote $out"
