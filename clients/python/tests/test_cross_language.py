"""Python agents under the real muster binary: ``muster check --agent`` and a
running ``muster serve`` (/readyz) see a Python agent's ready within 1 s and
its death (SIGKILL, key expiry) as not ready; and the Rust side (``muster
signal``, which writes through the muster-signal crate) and this package
write the same bytes for the same state, and read each other's values the same."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    RedisServer,
    down_from,
    free_port,
    up_from,
    wait_line,
    wait_port,
    wait_until,
)

from muster_signal import Client
from muster_signal._protocol import dumps
from muster_signal.read import decode, plain_line

# A seed-style agent: the two module functions, settings from the environment.
SEED_AGENT = """
import sys, muster_signal
muster_signal.mark_agent_ready("py-agent", {"port": 8000, "health_port": 8001})
print("ready", flush=True)
if sys.stdin.readline().strip() == "stop":
    muster_signal.mark_agent_not_ready("py-agent", "graceful shutdown")
    print("stopped", flush=True)
"""

# An agent with a 1 s TTL (heartbeat every 0.5 s) that runs until killed.
SHORT_TTL_AGENT = """
import sys, muster_signal
a = muster_signal.Client("py-agent", ttl=1)
a.ready({"port": 8000})
print("ready", flush=True)
sys.stdin.readline()
"""


def check(muster: Path, url: str, agent: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(muster), "check", "--agent", agent, "--redis-url", url, *extra],
        capture_output=True,
        text=True,
        timeout=10,
        env={**os.environ, "MUSTER_NAMESPACE": "muster"},
    )


def agent_process(url: str, code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "MUSTER_REDIS_URL": url, "MUSTER_NAMESPACE": "muster"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_muster_check_sees_a_python_agent(rs: RedisServer, muster_bin: Path) -> None:
    assert check(muster_bin, rs.url(), "py-agent").returncode == 1
    proc = agent_process(rs.url(), SEED_AGENT)
    try:
        wait_line(proc, "ready")
        took = wait_until(lambda: check(muster_bin, rs.url(), "py-agent").returncode == 0, 1.0)
        assert took < 1.0
        assert proc.stdin is not None
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        wait_line(proc, "stopped")
        out = check(muster_bin, rs.url(), "py-agent")
        assert out.returncode == 1
        assert "graceful shutdown" in out.stderr
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def serve(rs: RedisServer, muster_bin: Path) -> Iterator[str]:
    """``muster serve`` of a one-service stack whose readiness is py-agent's
    ready signal, on a free port; yields its base URL."""
    work = Path(tempfile.mkdtemp(prefix="muster-pytest-serve-"))
    (work / "compose.yaml").write_text(
        "services:\n"
        "  py-agent:\n"
        "    image: muster-test/busybox:1\n"
        "    x-muster:\n"
        "      probes:\n"
        "        - agent: { name: py-agent }\n"
    )
    port = free_port()
    log = open(work / "serve.log", "wb")
    proc = subprocess.Popen(
        [
            str(muster_bin),
            "-f",
            str(work / "compose.yaml"),
            "-p",
            f"mtpy{os.getpid()}",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--redis-url",
            rs.url(),
            "--state-file",
            str(work / "state.json"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MUSTER_NAMESPACE": "muster", "XDG_STATE_HOME": str(work)},
    )
    log.close()
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def readyz(base: str) -> int:
    try:
        with urllib.request.urlopen(f"{base}/readyz/py-agent", timeout=2) as r:  # noqa: S310
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_muster_serve_sees_ready_and_sigkill(rs: RedisServer, muster_bin: Path, serve: str) -> None:
    assert readyz(serve) == 503
    proc = agent_process(rs.url(), SHORT_TTL_AGENT)
    try:
        wait_line(proc, "ready")
        took = wait_until(lambda: readyz(serve) == 200, 1.0)
        assert took < 1.0
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        # The key outlives the process by at most its TTL (1 s), then muster check says no.
        wait_until(lambda: check(muster_bin, rs.url(), "py-agent").returncode == 1, 3.0)
        assert time.monotonic() - killed < 3.0
        assert not rs.admin().exists("muster:ready:py-agent")
        # The supervisor sees the expiry and /readyz turns 503 (after its failure threshold).
        wait_until(lambda: readyz(serve) == 503, 10.0, step=0.1)
    finally:
        proc.kill()
        proc.wait()


def signal_cli(muster: Path, url: str, *args: str) -> None:
    subprocess.run(
        [str(muster), "signal", *args, "--redis-url", url],
        check=True,
        capture_output=True,
        timeout=10,
        env={**os.environ, "MUSTER_NAMESPACE": "muster"},
    )


def test_rust_and_python_write_the_same_bytes(rs: RedisServer, muster_bin: Path) -> None:
    admin = rs.admin()
    pubsub = admin.pubsub()
    pubsub.psubscribe("muster:events:*")
    pubsub.get_message(timeout=1)

    def rust_event() -> bytes:
        for _ in range(50):
            msg = pubsub.get_message(timeout=0.1)
            if msg and msg["type"] == "pmessage":
                data = msg["data"]
                assert isinstance(data, bytes)
                return data
        raise AssertionError("muster signal published nothing")

    note = 'é "q"\t\x01 \u2028 😀'
    cases: list[tuple[list[str], str]] = [
        (["ready", "--meta", "model=small", "--meta", f"note={note}"], "ready"),
        (["starting", "--progress", "loading model 40%", "--extend", "5m"], "starting"),
        (["stopping"], "stopping"),
        (["not-ready", "--reason", f"broker down: {note}"], "not_ready"),
    ]
    for args, status in cases:
        signal_cli(muster_bin, rs.url(), args[0], "--agent", "rust-agent", *args[1:])
        event = rust_event()
        if status == "not_ready":
            raw = admin.get("muster:notready:rust-agent")
            assert raw is not None
            down = down_from(json.loads(raw))
            assert dumps(down.value()).encode() == raw
            assert dumps(down.event("rust-agent")).encode() == event
            # Read back as one plain line: control characters escaped.
            assert decode(None, raw).reason == plain_line(f"broker down: {note}")
            continue
        raw = admin.get("muster:ready:rust-agent")
        assert raw is not None
        up = up_from("rust-agent", json.loads(raw))
        assert dumps(up.value()).encode() == raw, "Python would write other bytes"
        assert dumps(up.event("rust-agent", 30000)).encode() == event
        assert decode(raw, None).status == status
    pubsub.close()

    # And what Python writes, muster reads as Python does.
    c = Client("py-agent", redis_url=rs.url())
    for step in (
        lambda: c.starting("loading model 40%", extend=300),
        lambda: c.ready({"model": "small", "note": note}),
        c.stopping,
        lambda: c.not_ready(f"broker down: {note}"),
    ):
        step()
        out = check(muster_bin, rs.url(), "py-agent", "--json")
        rust_view = json.loads(out.stdout)
        mine = c.read()
        assert (rust_view["status"], rust_view["reason"], rust_view["ready"]) == (
            mine.status,
            mine.reason,
            mine.is_ready,
        )
        assert out.returncode == (0 if mine.is_ready else 1)
    c.close()


def test_foreign_values_read_the_same_in_rust_and_python(rs: RedisServer, muster_bin: Path) -> None:
    """Raw values anyone could write (newlines, terminal escapes, bidi
    overrides, over-long text, over-size values) read as the same single line
    in ``muster check`` (the Rust reader) and in ``muster_signal.read``."""
    admin = rs.admin()
    forged = "bye\nmuster: all ready\x1b[2J\u202eevil\x00"
    long_text = "é" * 600
    cases = {
        "ready": json.dumps({"status": "starting", "since": 5, "progress": forged}),
        "notready": json.dumps({"reason": forged, "since": 5}),
        "plain": forged,
        "long": json.dumps({"reason": long_text, "since": 5}),
        "huge-ready": json.dumps({"status": "starting", "since": 5, "progress": "x" * 20000}),
        "huge-notready": "r" * 20000,
    }
    for name, raw in cases.items():
        admin.delete(f"muster:ready:{name}", f"muster:notready:{name}")
        key = "ready" if name in ("ready", "huge-ready") else "notready"
        admin.set(f"muster:{key}:{name}", raw.encode("utf-8"))
        rust_view = json.loads(check(muster_bin, rs.url(), name, "--json").stdout)
        ready_raw, notready_raw = admin.mget(f"muster:ready:{name}", f"muster:notready:{name}")
        mine = decode(ready_raw, notready_raw)
        assert (rust_view["status"], rust_view["reason"]) == (mine.status, mine.reason), name
        assert "\n" not in mine.reason and "\x1b" not in mine.reason, name
        assert len(mine.reason) < 700, name
    assert decode(None, json.dumps({"reason": forged, "since": 1})).reason == (
        "bye\\nmuster: all ready\\u{1b}[2J\\u{202e}evil\\u{0}"
    )
    assert decode(None, json.dumps({"reason": long_text, "since": 1})).reason == "é" * 512 + "…"
    admin.close()
