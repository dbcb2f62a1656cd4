"""The asyncio client against a real redis-server: same bytes as the sync
client, the heartbeat task, ``async with``, outages, and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
from conftest import RedisServer

import muster_signal
from muster_signal import Client
from muster_signal.aio import AsyncClient


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_async_writes_what_the_sync_client_writes(rs: RedisServer) -> None:
    admin = rs.admin()

    async def main() -> None:
        async with muster_signal.aio.agent("async-a", redis_url=rs.url(), ttl=1) as a:
            await a.starting("warming up", extend=60)
            assert (await a.read()).progress == "warming up"
            await a.ready({"b": [1, 2], "a": "x"})
            await asyncio.sleep(2.5)  # 2.5 TTLs: the heartbeat task keeps the key
            assert (await a.read()).is_ready
            admin.delete("muster:ready:async-a")
            for _ in range(150):
                if admin.exists("muster:ready:async-a"):
                    break
                await asyncio.sleep(0.01)
            assert admin.exists("muster:ready:async-a")
            async_value = json.loads(admin.get("muster:ready:async-a") or b"")
        sync = Client("sync-a", redis_url=rs.url())
        sync.ready({"a": "x", "b": [1, 2]})
        sync_value = json.loads(admin.get("muster:ready:sync-a") or b"")
        sync.close()
        for v in (async_value, sync_value):
            v.pop("since")
        assert async_value == sync_value
        assert (await AsyncClient("async-a", redis_url=rs.url()).read()).reason == "stopped"

    run(main())


def test_async_exception_becomes_the_reason(rs: RedisServer) -> None:
    async def main() -> None:
        with pytest.raises(KeyError):
            async with muster_signal.aio.agent("async-b", redis_url=rs.url()) as a:
                await a.ready()
                raise KeyError("model")
        c = AsyncClient("async-b", redis_url=rs.url())
        assert (await c.read()).reason == "KeyError: 'model'"
        await c.aclose()

    run(main())


def test_async_outage_and_recovery(own_redis: RedisServer) -> None:
    own_redis.stop()

    async def main() -> None:
        c = AsyncClient("async-c", redis_url=own_redis.url(), ttl=2, timeout=0.5)
        assert (c.agent, c.namespace, c.ttl) == ("async-c", "muster", 2.0)
        with pytest.raises(muster_signal.RedisUnavailable):
            await c.ready()
        own_redis.start()
        start = time.monotonic()
        while not own_redis.admin().exists("muster:ready:async-c"):
            assert time.monotonic() - start < 2, "not re-asserted within 2 s"
            await asyncio.sleep(0.02)
        # A restart that loses the data while the agent runs: back within
        # TTL/2 (1 s) plus a retry, with the value the agent last asserted.
        before = own_redis.admin().get("muster:ready:async-c")
        own_redis.stop()
        await asyncio.sleep(0.3)
        own_redis.start()
        start = time.monotonic()
        while not own_redis.admin().exists("muster:ready:async-c"):
            assert time.monotonic() - start < 3, "not re-asserted within 3 s of the restart"
            await asyncio.sleep(0.02)
        assert own_redis.admin().get("muster:ready:async-c") == before
        task = c._task
        await c.aclose()
        assert task is not None and task.done()

    run(main())


def test_async_sigterm(rs: RedisServer) -> None:
    async def main() -> None:
        async with AsyncClient("async-d", redis_url=rs.url()) as a:
            await a.ready()
            received = a.handle_sigterm()
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(received.wait(), 5)
            assert (await a.read()).status == "stopping"
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        c = AsyncClient("async-d", redis_url=rs.url())
        assert (await c.read()).reason == "stopped"
        await c.aclose()

    run(main())
