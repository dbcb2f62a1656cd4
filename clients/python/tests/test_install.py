"""``pip install ./clients/python`` into a fresh venv, as on a fresh machine,
then the seed-style two calls make an agent ready and not ready under the
real ``muster check`` (issue 19's "Done when"), with the pinned redis-py and
with 4.3.4 (Debian bookworm's python3-redis, what the demo image runs), sync
and asyncio.

Why it exists: the other tests import the package scripts/setup.sh installed
with ``--no-build-isolation``; this one proves the package builds with its
declared backend in an isolated build and works with only its declared
dependency. pip gets no index, only the wheelhouse setup.sh fetched
(target/python-wheels), so the test needs no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLIENT, REPO, RedisServer

WHEELS = REPO / "target" / "python-wheels"

WHERE = "import muster_signal, pathlib; print(pathlib.Path(muster_signal.__file__).parent)"

AGENT = """
import asyncio, sys
import redis
from muster_signal import mark_agent_ready, mark_agent_not_ready
from muster_signal.aio import AsyncClient

print("redis", redis.__version__, flush=True)
if sys.argv[1] == "ready":
    assert mark_agent_ready("fresh-agent", {"port": 8000, "startup_time": 1.5e-05}) is True
elif sys.argv[1] == "not-ready":
    assert mark_agent_not_ready("fresh-agent", "graceful shutdown") is True
else:
    async def main():
        async with AsyncClient("fresh-async") as a:
            await a.ready({"port": 8001})
            print("ready", (await a.read()).is_ready, flush=True)
    asyncio.run(main())
"""


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="muster-pytest-install-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.mark.parametrize("redis_pin", ["pinned", "redis==4.3.4"])
def test_pip_install_into_a_fresh_venv(
    redis_pin: str, work: Path, rs: RedisServer, muster_bin: Path
) -> None:
    if not list(WHEELS.glob("hatchling-*.whl")):
        pytest.fail(f"no wheelhouse in {WHEELS}: run scripts/setup.sh")
    # A clean environment: no PYTHONPATH, no venv of the caller's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELS), PIP_DISABLE_PIP_VERSION_CHECK="1")
    base = getattr(sys, "_base_executable", sys.executable)
    # No pip inside (ensurepip alone takes 30 s on a busy machine): this
    # venv's pip installs into it with --python, as it would from inside.
    run([base, "-m", "venv", "--without-pip", str(work / "venv")], work, env)
    python = str(work / "venv" / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python]
    extra = [] if redis_pin == "pinned" else [redis_pin]
    run([*pip, "install", "-q", str(CLIENT), *extra], work, env)
    installed = Path(run([python, "-c", WHERE], work, env).strip())
    assert installed.is_relative_to(work / "venv"), installed  # not the source tree
    assert (installed / "py.typed").is_file()
    assert (installed / "protocol" / "assert.lua").is_file()

    agent_env = {**env, "MUSTER_REDIS_URL": rs.url(), "MUSTER_NAMESPACE": "muster"}

    def agent(step: str) -> str:
        return run([python, "-c", AGENT, step], work, agent_env)

    def check(name: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(muster_bin), "check", "--agent", name, "--redis-url", rs.url()]
        return subprocess.run(cmd, env=agent_env, capture_output=True, text=True, timeout=10)

    want = "redis 8." if redis_pin == "pinned" else "redis 4.3.4"
    assert agent("ready").startswith(want)
    assert check("fresh-agent").returncode == 0
    agent("not-ready")
    out = check("fresh-agent")
    assert out.returncode == 1 and "graceful shutdown" in out.stderr
    assert "ready True" in agent("async")
    out = check("fresh-async")
    assert out.returncode == 1 and "stopped" in out.stderr  # `async with` ended: not ready
