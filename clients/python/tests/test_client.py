"""The sync client against a real redis-server: exact keys, values, TTLs and
events; the heartbeat; ``with``; the module functions; outages and restarts;
SIGTERM; and that no password reaches a log line or an error."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Iterator

import pytest
import redis
from conftest import RedisServer, free_port, run_agent_script, wait_line, wait_until

import muster_signal
from muster_signal import Client, _protocol


@pytest.fixture
def events(rs: RedisServer) -> Iterator[redis.client.PubSub]:
    pubsub = rs.admin().pubsub()
    pubsub.psubscribe("muster:events:*")  # every agent's own channel
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    yield pubsub
    pubsub.close()


def next_event(pubsub: redis.client.PubSub, timeout: float = 2.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.1)
        if msg and msg["type"] == "pmessage":
            event = json.loads(msg["data"])
            assert msg["channel"] == f"muster:events:{event['agent']}".encode()
            assert isinstance(event, dict)
            return event
    raise AssertionError("no event")


def no_event(pubsub: redis.client.PubSub, wait: float = 0.3) -> None:
    msg = pubsub.get_message(timeout=wait)
    assert msg is None, msg


def test_ready_writes_the_protocol_value(rs: RedisServer, events: redis.client.PubSub) -> None:
    admin = rs.admin()
    admin.set("muster:notready:a1", "old reason")
    with Client("a1", redis_url=rs.url()) as c:
        c.ready({"port": 8080, "model": "small"})
        raw = admin.get("muster:ready:a1")
        assert raw is not None
        value = json.loads(raw)
        assert list(value) == ["status", "since", "host", "pid", "meta"]
        assert value["status"] == "ready"
        assert value["meta"] == {"model": "small", "port": 8080}
        assert abs(value["since"] - time.time() * 1000) < 5000
        assert 29000 < admin.pttl("muster:ready:a1") <= 30000
        assert admin.get("muster:notready:a1") is None
        event = next_event(events)
        assert event["agent"] == "a1" and event["status"] == "ready"
        assert event["ttl_ms"] == 30000 and event["since"] == value["since"]
        # The same state again: TTL refreshed, value and since kept, nothing published.
        admin.pexpire("muster:ready:a1", 5000)
        c.ready({"model": "small", "port": 8080})
        assert admin.get("muster:ready:a1") == raw
        assert admin.pttl("muster:ready:a1") > 29000
        no_event(events)
        assert c.read().is_ready
        assert c.read().meta == {"model": "small", "port": 8080}


def test_sends_nothing_redis_refuses(rs: RedisServer) -> None:
    """No command of the client's, the connection handshake included, is one
    Redis answers with an error (redis-py's CLIENT SETINFO and CLIENT
    MAINT_NOTIFICATIONS are turned off: the agent ACL user may not run them)."""
    from muster_signal.aio import AsyncClient

    admin = rs.admin()
    # What muster does when it connects: load the functions the client calls.
    admin.function_load(_protocol.function_library(), replace=True)
    admin.config_resetstat()  # after the admin's own handshake
    with Client("quiet", redis_url=rs.url()) as c:
        c.starting("x", extend=5)
        c.ready({"port": 1})
        c.heartbeat_now()
        c.read("other")

    async def main() -> None:
        async with AsyncClient("quiet-async", redis_url=rs.url()) as a:
            await a.ready()
            await a.heartbeat_now()

    asyncio.run(main())
    assert admin.info("errorstats") == {}
    assert admin.info("commandstats")["cmdstat_fcall"]["calls"] >= 8
    admin.function_delete(_protocol.FUNCTION_LIBRARY_NAME)


def test_without_functions_each_client_tries_fcall_once_then_evals(rs: RedisServer) -> None:
    """Redis 6, or muster not connected yet: one refused FCALL per client,
    then EVAL of the same script for every write."""
    from muster_signal.aio import AsyncClient

    admin = rs.admin()
    admin.config_resetstat()
    with Client("evaluating", redis_url=rs.url()) as c:
        c.starting("x", extend=5)
        c.ready({"port": 1})
        c.not_ready("bye")
        c.ready()

    async def main() -> None:
        async with AsyncClient("evaluating-async", redis_url=rs.url()) as a:
            await a.ready()
            await a.not_ready("bye")

    asyncio.run(main())
    stats = admin.info("commandstats")
    assert stats["cmdstat_fcall"]["failed_calls"] == 2, stats["cmdstat_fcall"]
    assert stats["cmdstat_eval"]["calls"] >= 6
    assert admin.exists("muster:notready:evaluating-async")


def test_starting_extends_the_deadline(rs: RedisServer, events: redis.client.PubSub) -> None:
    with Client("a2", redis_url=rs.url()) as c:
        c.starting("loading model 10%", extend=300)
        r = c.read()
        assert r.status == "starting" and r.progress == "loading model 10%"
        assert r.deadline_ms is not None
        assert abs(r.deadline_ms - (time.time() + 300) * 1000) < 5000
        first = next_event(events)
        assert first["status"] == "starting" and first["deadline"] == r.deadline_ms
        c.starting("loading model 40%")  # no extend: the deadline stays
        r2 = c.read()
        assert (r2.deadline_ms, r2.since_ms, r2.progress) == (
            r.deadline_ms,
            r.since_ms,
            "loading model 40%",
        )
        assert next_event(events)["progress"] == "loading model 40%"
        c.stopping()
        assert c.read().status == "stopping"
        assert c.read().reason == "stopping (graceful shutdown)"


def test_not_ready_keeps_the_reason(rs: RedisServer, events: redis.client.PubSub) -> None:
    admin = rs.admin()
    c = Client("a3", redis_url=rs.url(), notready_ttl=60)
    c.ready()
    next_event(events)
    c.not_ready("broker connection lost")
    assert admin.get("muster:ready:a3") is None
    stored = json.loads(admin.get("muster:notready:a3") or b"")
    assert list(stored) == ["reason", "since", "host", "pid"]
    assert stored["reason"] == "broker connection lost"
    assert 59000 < admin.pttl("muster:notready:a3") <= 60000
    event = next_event(events)
    assert event["status"] == "not_ready" and event["reason"] == "broker connection lost"
    assert "ttl_ms" not in event
    c.not_ready("broker connection lost")  # unchanged: no event
    no_event(events)
    assert c.read().reason == "broker connection lost"
    c.close()


def test_heartbeat_keeps_the_key_and_reasserts_it(rs: RedisServer) -> None:
    admin = rs.admin()
    c = Client("a4", redis_url=rs.url(), ttl=1)
    c.ready()
    time.sleep(2.5)  # 2.5 TTLs: only the heartbeat keeps it
    assert c.read().is_ready
    admin.delete("muster:ready:a4")  # as if Redis lost it
    wait_until(lambda: admin.exists("muster:ready:a4"), 1.5)
    thread = c._thread
    c.close()
    assert thread is not None and not thread.is_alive()
    wait_until(lambda: not admin.exists("muster:ready:a4"), 3.0)
    assert c.read().reason == muster_signal.NO_SIGNAL


def test_with_block_marks_not_ready_with_the_exception(
    rs: RedisServer, events: redis.client.PubSub
) -> None:
    with muster_signal.agent("a5", redis_url=rs.url()) as a:
        a.ready()
    assert [next_event(events)["status"] for _ in range(3)] == ["ready", "stopping", "not_ready"]
    assert a.read().reason == "stopped"
    with pytest.raises(ValueError, match="boom"), muster_signal.agent("a5", redis_url=rs.url()):
        raise ValueError("boom")
    events.get_message(timeout=0.5)
    assert Client("a5", redis_url=rs.url()).read().reason == "ValueError: boom"


def test_module_functions(rs: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSTER_REDIS_URL", rs.url())
    monkeypatch.setenv("MUSTER_NAMESPACE", "stack1")
    meta = {"port": 8000, "health_port": 8001, "startup_time": 2.5}
    assert muster_signal.mark_agent_ready("seed-agent", meta) is True
    value = json.loads(rs.admin().get("stack1:ready:seed-agent") or b"")
    assert value["meta"] == {"health_port": 8001, "port": 8000, "startup_time": 2.5}
    assert muster_signal.mark_agent_not_ready("seed-agent", "graceful shutdown") is True
    stored = json.loads(rs.admin().get("stack1:notready:seed-agent") or b"")
    assert stored["reason"] == "graceful shutdown"
    assert not rs.admin().exists("stack1:ready:seed-agent")
    with pytest.raises(muster_signal.InvalidName):
        muster_signal.mark_agent_ready("bad name")


def test_outage_does_not_crash_and_heartbeat_reasserts(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="muster_signal")
    own_redis.stop()
    c = Client("a6", redis_url=own_redis.url("default", "s3cret-pw"), ttl=2, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(muster_signal.RedisUnavailable) as e:
        c.ready({"v": 1})
    assert time.monotonic() - started < 5
    assert "s3cret-pw" not in str(e.value) and "***" in str(e.value)
    assert isinstance(e.value, ConnectionError)
    own_redis.start()  # an empty Redis, as after a restart without persistence
    took = wait_until(lambda: own_redis.admin().exists("muster:ready:a6"), 3.0)
    assert took < 1.5, f"re-asserted only after {took:.2f}s"
    assert c.read().meta == {"v": 1}
    # A restart that loses the data: back within TTL/2 (1 s) + retry.
    own_redis.stop()
    time.sleep(0.4)
    own_redis.start()
    wait_until(lambda: own_redis.admin().exists("muster:ready:a6"), 2.0)
    c.close()
    assert "s3cret-pw" not in caplog.text
    assert "could not send agent a6's 'ready'" in caplog.text
    assert "reachable again" in caplog.text


def test_module_functions_survive_an_outage(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    monkeypatch.setenv("MUSTER_REDIS_URL", f"redis://agent:top-secret@127.0.0.1:{port}")
    assert muster_signal.mark_agent_ready("down-agent", {"port": 1}) is False
    assert muster_signal.mark_agent_not_ready("down-agent", "bye") is False
    assert "could not mark agent down-agent" in caplog.text
    assert "top-secret" not in caplog.text


def test_wrong_password_is_refused(acl_redis: RedisServer) -> None:
    c = Client("a7", redis_url=acl_redis.url("agent", "not-the-password"))
    with pytest.raises(muster_signal.CommandRefused) as e:
        c.ready()
    assert "not-the-password" not in str(e.value)
    c.close()


def test_sigterm_marks_stopping_then_not_ready(rs: RedisServer) -> None:
    code = (
        "import muster_signal\n"
        "with muster_signal.agent('term-agent', sigterm=True) as a:\n"
        "    a.ready()\n"
        "    print('ready', flush=True)\n"
        "    import time\n"
        "    time.sleep(30)\n"
    )
    pubsub = rs.admin().pubsub()
    pubsub.psubscribe("muster:events:*")
    pubsub.get_message(timeout=1)
    proc = run_agent_script(code, {"MUSTER_REDIS_URL": rs.url()})
    try:
        wait_line(proc, "ready")
        assert next_event(pubsub)["status"] == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert next_event(pubsub)["status"] == "stopping"
        event = next_event(pubsub)
        assert (event["status"], event["reason"]) == ("not_ready", "stopped on SIGTERM")
    finally:
        proc.kill()
        proc.wait()
        pubsub.close()


def test_command_line(rs: RedisServer) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MUSTER_REDIS_URL": rs.url(), "MUSTER_AGENT": "cli-agent"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "muster_signal", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=20)

    out = cli("check")
    assert out.returncode == 1 and muster_signal.NO_SIGNAL in out.stderr
    assert cli("ready", "--meta", "port=1").returncode == 0
    assert cli("check").returncode == 0
    assert cli("not-ready", "--reason", "bye").returncode == 0
    out = cli("check")
    assert out.returncode == 1 and "bye" in out.stderr
    env["MUSTER_REDIS_URL"] = f"redis://u:hidden-pw@127.0.0.1:{free_port()}"
    out = cli("check", "--timeout", "0.3")
    assert out.returncode == 2 and "hidden-pw" not in out.stderr
