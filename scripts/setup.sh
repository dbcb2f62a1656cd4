#!/usr/bin/env bash
# Installs and starts what muster's tests and example stack need on a fresh
# Debian machine: redis-server, nats-server, busybox-static (for locally built
# test images), docker-registry and htpasswd (the pull tests), tmux (the status --watch test), a Docker engine, and a Python venv (target/python) with the
# Python client's test tools and the client itself. Idempotent: skips what is
# already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # tests/probe/https.rs makes its CA and serves TLS with it
command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)  # tests/image: a real registry to pull from
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)            # its htpasswd (bcrypt) auth
command -v tmux >/dev/null 2>&1 || need+=(tmux)                       # tests/status/watch.rs: status --watch in a real terminal
# tests/swarm: test-owned dockerd nodes in network namespaces (ip netns, veth,
# bridge), the FORWARD rule between them, and nsenter/unshare to start them.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
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
# The Python client (clients/python): a venv under target/ with pinned test
# tools from PyPI, and the package itself installed from its source (so the
# tests run what `pip install ./clients/python` installs). PYTHON picks the
# interpreter (default python3, 3.9 or newer).
py=${PYTHON:-python3}
venv=target/python
if ! command -v "$py" >/dev/null 2>&1; then
  echo "setup: installing python3"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv for `-m venv` (ensurepip).
    rm -rf "$venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$py" -m venv "$venv"
  fi
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  -r clients/python/requirements-test.txt
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  --no-build-isolation --no-deps --force-reinstall ./clients/python
# A wheelhouse for clients/python/tests/test_install.py, which runs a real
# `pip install ./clients/python` (build backend in an isolated build, as on a
# fresh machine) into fresh venvs with no index: the pinned hatchling and
# redis-py, and redis-py 4.3.4 (Debian bookworm's python3-redis, the oldest
# release the package is tested with). Fetched once.
wheels=target/python-wheels
if ! ls "$wheels"/hatchling-*.whl "$wheels"/redis-4.3.4-*.whl >/dev/null 2>&1; then
  echo "setup: fetching the wheelhouse for the Python install test ($wheels)"
  for pin in $(grep -E '^(hatchling|redis)==' clients/python/requirements-test.txt) redis==4.3.4; do
    "$venv/bin/python" -m pip download -q --disable-pip-version-check -d "$wheels" "$pin"
  done
fi

echo "setup: redis-server $(redis-server --version | awk '{print $3}'), nats-server $(nats-server --version 2>&1 | awk '{print $2}'), docker $(docker version --format '{{.Server.Version}}'), $("$venv/bin/python" --version)"
