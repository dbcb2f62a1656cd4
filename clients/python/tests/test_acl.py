"""redis.conf as shipped: its ``agent`` user can do everything this
client does (sync and asyncio), and nothing else: no other keys, channels,
namespaces or commands."""

from __future__ import annotations

import asyncio

import pytest
import redis
from conftest import ACL_ADMIN, ACL_ADMIN_PASSWORD, RedisServer

import muster_signal
from muster_signal import Client, _protocol
from muster_signal.aio import AsyncClient


def test_agent_user_can_do_everything_the_client_needs(
    acl_redis: RedisServer, passwords: dict[str, str]
) -> None:
    url = acl_redis.url("agent", passwords["agent"])
    admin = redis.Redis.from_url(acl_redis.url(ACL_ADMIN, ACL_ADMIN_PASSWORD))
    admin.acl_log_reset()
    c = Client("acl-agent", redis_url=url)
    c.starting("loading", extend=30)
    c.ready({"port": 1})
    assert c.heartbeat_now() is False
    assert c.read().is_ready
    assert c.read("some-other-agent").reason == muster_signal.NO_SIGNAL
    c.stopping()
    c.not_ready("bye")
    assert c.read().reason == "bye"
    c.ready()
    c.close()
    muster = redis.Redis.from_url(acl_redis.url("muster", passwords["muster"]))
    assert muster.exists("muster:ready:acl-agent")

    async def main() -> None:
        async with AsyncClient("acl-async", redis_url=url) as a:
            await a.starting("x", extend=5)
            await a.ready()
            assert await a.heartbeat_now() is False
            assert (await a.read()).is_ready

    asyncio.run(main())
    assert not muster.exists("muster:ready:acl-async")
    assert muster.exists("muster:notready:acl-async")
    # Nothing either client sent (connection handshake included) was refused.
    assert admin.acl_log() == []


def test_agent_user_can_do_nothing_else(acl_redis: RedisServer, passwords: dict[str, str]) -> None:
    url = acl_redis.url("agent", passwords["agent"])
    other_ns = Client("acl-agent", redis_url=url, namespace="other")
    with pytest.raises(muster_signal.CommandRefused, match=r"NOPERM|permission"):
        other_ns.ready()
    other_ns.close()
    r = redis.Redis.from_url(url)
    for call in (
        lambda: r.get("muster:history:x"),
        lambda: r.set("muster:revisions:api", "x"),
        lambda: r.publish("other:events", "x"),
        lambda: r.publish("other:events:acl-agent", "x"),
        lambda: r.keys("*"),
        lambda: r.scan(),
        lambda: r.config_get("*"),
        lambda: r.flushall(),
        lambda: r.execute_command("SCRIPT", "LOAD", "return 1"),
        lambda: r.eval("return redis.call('GET', KEYS[1])", 1, "muster:history:x"),
    ):
        with pytest.raises(redis.exceptions.ResponseError):
            call()
    admin = redis.Redis.from_url(acl_redis.url(ACL_ADMIN, ACL_ADMIN_PASSWORD))
    assert {e["username"] for e in admin.acl_log()} == {"agent"}  # and Redis logged each


def test_agent_user_may_not_run_lua_of_its_own(
    acl_redis: RedisServer, passwords: dict[str, str]
) -> None:
    """No EVAL for agents: a loop in a script would block every client of
    Redis. The client's writes go through muster's functions (FCALL)."""
    r = redis.Redis.from_url(acl_redis.url("agent", passwords["agent"]))
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.eval("local i = 0 while true do i = i + 1 end", 0)
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.function_load("#!lua name=evil\nredis.register_function('f', function() end)")
    assert (
        r.fcall(
            _protocol.ASSERT_FUNCTION,
            2,
            *_keys("fcall-agent"),
            "{}",
            5000,
            "muster:events:fcall-agent",
            "{}",
        )
        == 1
    )


def test_without_muster_functions_a_user_without_eval_is_told_what_to_do(
    acl_redis: RedisServer, passwords: dict[str, str]
) -> None:
    admin = redis.Redis.from_url(acl_redis.url(ACL_ADMIN, ACL_ADMIN_PASSWORD))
    admin.function_delete(_protocol.FUNCTION_LIBRARY_NAME)
    try:
        c = Client("no-functions", redis_url=acl_redis.url("agent", passwords["agent"]))
        with pytest.raises(
            muster_signal.CommandRefused, match=r"functions .*muster_v1.* not loaded"
        ):
            c.ready()
        c.close()
        # With EVAL allowed (Redis 6, or a user that has it) the same write
        # goes through EVAL of the script.
        evaluator = Client("no-functions", redis_url=acl_redis.url(ACL_ADMIN, ACL_ADMIN_PASSWORD))
        evaluator.ready()
        assert evaluator.read().is_ready
        evaluator.close()
    finally:
        admin.function_load(_protocol.function_library(), replace=True)


def _keys(agent: str) -> tuple[str, str]:
    return (f"muster:ready:{agent}", f"muster:notready:{agent}")
