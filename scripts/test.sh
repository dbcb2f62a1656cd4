#!/usr/bin/env bash
# The test command: install/start what the tests need, then run every test of
# the workspace against a real Redis, NATS and Docker engine, then the Python
# client's tests (pytest, against real redis-servers, the muster binary and
# the Docker engine), its type check (mypy --strict) and lint (ruff).
#
# Extra arguments go to `cargo test` (e.g. `--test signal`); with extra
# arguments the Python part is skipped unless PYTHON_TESTS=1. PYTHON_TESTS=0
# skips it always.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-test-images.sh
# The base the Dockerfile's image is built on here (tests/ship/image.rs):
# debootstrap, about 90 s the first time, kept afterwards.
bash scripts/build-base-image.sh
cargo test --workspace "$@"

python_tests=${PYTHON_TESTS:-$([ $# -eq 0 ] && echo 1 || echo 0)}
if [ "$python_tests" != 1 ]; then
  echo "test: Python client skipped (extra arguments given; PYTHON_TESTS=1 runs it)"
  exit 0
fi
cargo build --quiet --bin muster   # the cross-language tests run target/debug/muster
py=target/python/bin
(
  cd clients/python
  status=0
  "../../$py/python" -m pytest -q -p no:cacheprovider || status=$?
  if [ "$status" = 5 ]; then
    echo "test: pytest collected no tests in clients/python/tests; that is a failure" >&2
    exit 1
  fi
  [ "$status" = 0 ] || exit "$status"
  "../../$py/python" -m mypy --strict --no-incremental src/muster_signal
  "../../$py/python" -m ruff check --no-cache .
  "../../$py/python" -m ruff format --check --no-cache .
)
