"""Fixtures: real redis-server processes on free loopback ports (never 6379),
a copy of the repository's redis.conf with its ACL users, and the
muster binary for the cross-language tests.

Why it exists: every test of the client talks to a real Redis; nothing here
is a mock. Servers are started per test module (or per test, where a test
stops and restarts one) and killed afterwards, also when a test fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest
import redis

from muster_signal import _protocol
from muster_signal._protocol import Down, Up, canonical_meta

REPO = Path(__file__).resolve().parents[3]
CLIENT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """redis-server on a free port; ``stop()`` / ``start()`` keep the port."""

    def __init__(self, conf: Optional[Path] = None) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed: run scripts/setup.sh")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="muster-pytest-redis-"))
        self.conf = conf
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.start()

    def start(self) -> None:
        if self.conf is not None:
            args = ["redis-server", str(self.conf)]
        else:
            args = [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
                "--notify-keyspace-events", "Ex",
            ]  # fmt: skip
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def url(self, user: str = "", password: str = "") -> str:
        auth = f"{user}:{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def isolated_environment() -> Iterator[None]:
    """The shell's MUSTER_* and COMPOSE_* settings (a namespace, a Redis URL, a
    listen address of a muster you run) reach neither the clients under test
    nor the muster processes the tests start (``MUSTER_BIN`` excepted)."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith(("MUSTER_", "COMPOSE_")) and key != "MUSTER_BIN":
                mp.delenv(key)
        yield


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def rs(redis_server: RedisServer) -> RedisServer:
    """The module's server, emptied for this test."""
    redis_server.admin().flushall()
    return redis_server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test's own, which the test may stop and restart."""
    server = RedisServer()
    yield server
    server.close()


ACL_ADMIN = "pytest-admin"
ACL_ADMIN_PASSWORD = secrets.token_hex(16)


def compose_default(file: str, var: str) -> str:
    text = (REPO / "compose" / file).read_text()
    needle = "${" + var + ":-"
    start = text.index(needle) + len(needle)
    return text[start : text.index("}", start)]


@pytest.fixture(scope="module")
def acl_redis() -> Iterator[RedisServer]:
    """redis-server running the shipped redis.conf (port, dir, bind changed)."""
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="muster-pytest-redisconf-"))
    lines = []
    for line in (REPO / "redis.conf").read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key == "port":
            line = f"port {port}"
        elif key == "dir":
            line = f"dir {work}"
        elif key == "bind":
            line = "bind 127.0.0.1"
        lines.append(line)
    # One user of the test's own, to read ACL LOG (what Redis refused); the
    # shipped users stay as they are.
    lines.append(f"user {ACL_ADMIN} on >{ACL_ADMIN_PASSWORD} ~* &* +@all")
    conf = work / "redis.conf"
    conf.write_text("\n".join(lines) + "\n")
    server = RedisServer.__new__(RedisServer)
    server.port, server.dir, server.conf, server.proc = port, work, conf, None
    server.start()
    # What muster does when it connects: load the ready-signal functions that
    # the agent user (no EVAL) calls with FCALL.
    muster_pw = compose_default("demo.yaml", "MUSTER_REDIS_PASSWORD")
    with redis.Redis.from_url(server.url("muster", muster_pw)) as as_muster:
        as_muster.function_load(_protocol.function_library(), replace=True)
    yield server
    server.close()


@pytest.fixture(scope="session")
def passwords() -> dict[str, str]:
    return {
        "agent": compose_default("demo.yaml", "AGENT_REDIS_PASSWORD"),
        "muster": compose_default("demo.yaml", "MUSTER_REDIS_PASSWORD"),
    }


@pytest.fixture(scope="session")
def muster_bin() -> Path:
    """The muster binary cargo built (``MUSTER_BIN`` overrides)."""
    path = Path(os.environ.get("MUSTER_BIN", REPO / "target" / "debug" / "muster"))
    if not path.is_file():
        pytest.fail(f"{path} not found: build it first with `cargo build --bin muster`")
    return path


def run_agent_script(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """A Python agent as a separate process (this interpreter, this package)."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_line(proc: subprocess.Popen[str], want: str, timeout: float = 10.0) -> None:
    """Reads the child's stdout until a line equals ``want``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == want:
            return
        if not line and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"agent exited {proc.returncode} before {want!r}: {err}")
    raise AssertionError(f"agent did not print {want!r} within {timeout}s")


def wait_until(check: object, timeout: float, step: float = 0.01) -> float:
    """Polls ``check()`` until true; returns the seconds it took."""
    assert callable(check)
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"not true within {timeout}s")


def up_from(agent: str, value: dict[str, object]) -> Up:
    """The ``Up`` state a stored (or test-vector) signal value describes."""
    meta = value.get("meta")
    assert meta is None or isinstance(meta, dict)
    return Up(
        value["status"],  # type: ignore[arg-type]
        value["since"],  # type: ignore[arg-type]
        progress=value.get("progress"),  # type: ignore[arg-type]
        deadline=value.get("deadline"),  # type: ignore[arg-type]
        host=value.get("host"),  # type: ignore[arg-type]
        pid=value.get("pid"),  # type: ignore[arg-type]
        meta=canonical_meta(agent, meta),
    )


def down_from(value: dict[str, object]) -> Down:
    """The ``Down`` state a stored (or test-vector) not-ready value describes."""
    return Down(value["reason"], value["since"], value.get("host"), value.get("pid"))  # type: ignore[arg-type]
