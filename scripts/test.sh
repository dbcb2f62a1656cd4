#!/usr/bin/env bash
# The test command: install/start what the tests need, then run every test of
# the workspace against a real Redis, NATS and Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-test-images.sh
# The base the Dockerfile's image is built on here (tests/ship/image.rs):
# debootstrap, about 90 s the first time, kept afterwards.
bash scripts/build-base-image.sh
cargo test --workspace "$@"
