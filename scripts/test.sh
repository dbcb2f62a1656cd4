#!/usr/bin/env bash
# The test command: install/start what the tests need, then run every test of
# the workspace against a real Redis, NATS and Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-test-images.sh
cargo test --workspace "$@"
