"""The asyncio client: ``AsyncClient(agent)`` on ``redis.asyncio``, with its
heartbeat as a task of the running loop.

Why it exists: async agents (aiohttp, FastAPI, NATS consumers) must not
block their loop on Redis or run a thread for it. Same protocol, same
settings, same errors as the sync ``Client``; only the waiting differs.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from types import TracebackType
from typing import Optional

import redis.asyncio
import redis.exceptions

from ._core import Core, log, quiet_handshake
from ._protocol import DEFAULT_NOTREADY_TTL, DEFAULT_TTL, Command, function_missing
from .errors import CommandRefused, InvalidUrl, RedisUnavailable, SignalError
from .read import Readiness, decode

__all__ = ["AsyncClient", "agent"]


class AsyncClient:
    """Ready signals for one agent, for asyncio code. Arguments and errors
    are those of ``muster_signal.Client``; use ``async with`` or ``aclose()``."""

    def __init__(
        self,
        agent: Optional[str] = None,
        redis_url: Optional[str] = None,
        namespace: Optional[str] = None,
        ttl: float = DEFAULT_TTL,
        *,
        heartbeat: Optional[float] = None,
        notready_ttl: float = DEFAULT_NOTREADY_TTL,
        timeout: float = 2.0,
    ) -> None:
        self._core = Core(agent, redis_url, namespace, ttl, heartbeat, notready_ttl, timeout)
        try:
            self._redis: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
                self._core.url,
                socket_timeout=self._core.timeout,
                socket_connect_timeout=self._core.timeout,
                **quiet_handshake(redis.asyncio.Redis),
            )
        except ValueError as e:
            raise InvalidUrl(f"invalid Redis URL {self._core.safe_url}: {e}") from None
        self._lock: Optional[asyncio.Lock] = None
        self._wake: Optional[asyncio.Event] = None  # a failed call: retry now
        self._task: Optional[asyncio.Task[None]] = None
        self._closed = False
        self._sigterm_task: Optional[asyncio.Task[None]] = None

    def __repr__(self) -> str:
        return (
            f"AsyncClient(agent={self.agent!r}, namespace={self.namespace!r}, "
            f"url={self._core.safe_url!r})"
        )

    @property
    def agent(self) -> str:
        return self._core.agent

    @property
    def namespace(self) -> str:
        return self._core.namespace

    @property
    def ttl(self) -> float:
        return self._core.ttl_ms / 1000

    async def ready(self, meta: Optional[Mapping[str, object]] = None) -> None:
        """See ``Client.ready``."""
        async with self._locked():
            await self._send(self._core.up("ready", meta=meta))

    async def starting(self, progress: str = "", extend: Optional[float] = None) -> None:
        """See ``Client.starting``."""
        async with self._locked():
            await self._send(self._core.up("starting", progress=progress, extend=extend))

    async def stopping(self) -> None:
        """See ``Client.stopping``."""
        async with self._locked():
            await self._send(self._core.up("stopping"))

    async def not_ready(self, reason: str) -> None:
        """See ``Client.not_ready``."""
        async with self._locked():
            await self._send(self._core.down(reason))

    async def read(self, agent: Optional[str] = None) -> Readiness:
        """See ``Client.read``."""
        keys = self._core.read_keys(agent)
        try:
            ready, notready = await self._redis.mget(keys)
        except (redis.exceptions.RedisError, OSError) as e:
            raise self._core.translate(e) from None
        return decode(ready, notready)

    async def heartbeat_now(self) -> bool:
        """See ``Client.heartbeat_now``."""
        async with self._locked():
            if self._core.last is None:
                return False
            return await self._eval(self._core.command_now())

    def handle_sigterm(self) -> asyncio.Event:
        """On SIGTERM (through the running loop): mark this agent stopping,
        then set the returned event; await it, clean up, leave ``async with``."""
        received = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def on_term() -> None:
            self._core.sigterm = True
            log.info("muster_signal: SIGTERM: marking agent %s stopping", self.agent)
            try:
                await self.stopping()
            except SignalError as e:
                log.warning("muster_signal: could not mark agent %s stopping: %s", self.agent, e)
            received.set()

        def handler() -> None:
            self._sigterm_task = loop.create_task(on_term())

        loop.add_signal_handler(signal.SIGTERM, handler)
        return received

    async def aclose(self) -> None:
        """Stops the heartbeat task and closes the connections."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        close = getattr(self._redis, "aclose", None) or self._redis.close
        await close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        """Marks stopping, then not ready (the exception is the reason), then closes."""
        reason = self._core.exit_reason(exc)
        try:
            await self.stopping()
        except SignalError as e:
            self._core.exit_failed("stopping", e)
        try:
            await self.not_ready(reason)
        except SignalError as e:
            self._core.exit_failed("not ready", e)
        await self.aclose()

    def _locked(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _send(self, cmd: Command) -> None:
        if self._task is None and not self._closed:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        try:
            await self._eval(cmd)
        except (RedisUnavailable, CommandRefused) as e:
            self._core.beat_failed(e)
            if self._wake is not None:
                self._wake.set()
            raise

    async def _eval(self, cmd: Command) -> bool:
        """FCALL of muster's function; EVAL of the script where the function
        is not loaded (and from then on, until EVAL is refused)."""
        core = self._core
        try:
            if core.prefer_eval:
                try:
                    changed = await self._redis.eval(cmd.script, 2, *cmd.keys, *cmd.args)
                    return bool(changed == 1)
                except redis.exceptions.NoPermissionError:
                    core.prefer_eval = False
            try:
                changed = await self._redis.fcall(cmd.function, 2, *cmd.keys, *cmd.args)
            except redis.exceptions.ResponseError as e:
                if not function_missing(e):
                    raise
                try:
                    changed = await self._redis.eval(cmd.script, 2, *cmd.keys, *cmd.args)
                except redis.exceptions.NoPermissionError as refused:
                    raise core.no_functions(e, refused) from None
                core.prefer_eval = True
        except (redis.exceptions.RedisError, OSError) as e:
            raise core.translate(e) from None
        return bool(changed == 1)

    async def _heartbeat(self) -> None:
        delay = self._core.period
        wake = self._wake
        assert wake is not None  # noqa: S101 - set before the task starts
        while True:
            try:
                await asyncio.wait_for(wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
            wake.clear()
            try:
                delay = self._core.beat_ok(await self.heartbeat_now())
            except (RedisUnavailable, CommandRefused) as e:
                delay = self._core.beat_failed(e)
            except Exception:  # never let the task die
                log.exception("muster_signal: heartbeat for agent %s failed", self.agent)
                delay = self._core.retry


def agent(
    name: Optional[str] = None,
    *,
    redis_url: Optional[str] = None,
    namespace: Optional[str] = None,
    ttl: float = DEFAULT_TTL,
    heartbeat: Optional[float] = None,
    timeout: float = 2.0,
) -> AsyncClient:
    """An ``AsyncClient`` for ``async with muster_signal.aio.agent("name") as a:``."""
    return AsyncClient(name, redis_url, namespace, ttl, heartbeat=heartbeat, timeout=timeout)
