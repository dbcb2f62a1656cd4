"""The synchronous client: ``Client(agent)``, its heartbeat thread, the
``with`` form, the SIGTERM helper and the seed-style module functions.

Why it exists: most agents are plain (threaded or blocking) Python; they get
one object per agent that sends the protocol's two scripts through redis-py
and keeps the key alive from a daemon thread, so the agent's own code only
says "starting", "ready", "not ready" when those things happen.
"""

from __future__ import annotations

import logging
import signal
import threading
import weakref
from collections.abc import Mapping
from types import FrameType, TracebackType
from typing import Optional

import redis

from ._core import Core, log, quiet_handshake
from ._protocol import DEFAULT_NOTREADY_TTL, DEFAULT_TTL, Command, function_missing
from .errors import CommandRefused, InvalidUrl, RedisUnavailable, SignalError
from .read import Readiness, decode

__all__ = [
    "Client",
    "agent",
    "handle_sigterm",
    "mark_agent_not_ready",
    "mark_agent_ready",
    "mark_agent_starting",
    "mark_agent_stopping",
]

_LIVE: weakref.WeakSet[Client] = weakref.WeakSet()


class Client:
    """Ready signals for one agent.

    ``redis_url``, ``namespace`` and ``agent`` default to ``MUSTER_REDIS_URL``,
    ``MUSTER_NAMESPACE`` (else ``muster``) and ``MUSTER_AGENT``. ``ttl`` is the
    ready key's lifetime in seconds; the heartbeat re-asserts the last state
    every ``ttl / 2``. Constructing a client does not connect: Redis being
    down never fails it, only bad arguments do.

    Each call raises ``RedisUnavailable`` or ``CommandRefused`` when Redis
    cannot take it; the state is recorded first, so the heartbeat sends it
    as soon as Redis answers.
    """

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
            self._redis: redis.Redis = redis.Redis.from_url(
                self._core.url,
                socket_timeout=self._core.timeout,
                socket_connect_timeout=self._core.timeout,
                **quiet_handshake(redis.Redis),
            )
        except ValueError as e:
            raise InvalidUrl(f"invalid Redis URL {self._core.safe_url}: {e}") from None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # a failed call: retry now, not in TTL/2
        self._thread: Optional[threading.Thread] = None
        _LIVE.add(self)

    def __repr__(self) -> str:
        return (
            f"Client(agent={self.agent!r}, namespace={self.namespace!r}, "
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

    def ready(self, meta: Optional[Mapping[str, object]] = None) -> None:
        """The agent is ready; ``meta`` (at most 4 KiB as JSON) is shown by muster."""
        with self._lock:
            self._send(self._core.up("ready", meta=meta))

    def starting(self, progress: str = "", extend: Optional[float] = None) -> None:
        """Still starting; ``progress`` is shown by muster. ``extend`` (seconds)
        moves the start deadline to now + extend, so a slow start that keeps
        reporting progress is not failed; ``None`` keeps the last deadline."""
        with self._lock:
            self._send(self._core.up("starting", progress=progress, extend=extend))

    def stopping(self) -> None:
        """Shutting down gracefully (not ready)."""
        with self._lock:
            self._send(self._core.up("stopping"))

    def not_ready(self, reason: str) -> None:
        """Not ready, and why (kept in Redis for ``notready_ttl``)."""
        with self._lock:
            self._send(self._core.down(reason))

    def read(self, agent: Optional[str] = None) -> Readiness:
        """This (or another) agent's readiness, as ``muster check`` reads it."""
        keys = self._core.read_keys(agent)
        try:
            ready, notready = self._redis.mget(keys)
        except (redis.RedisError, OSError) as e:
            raise self._core.translate(e) from None
        return decode(ready, notready)

    def heartbeat_now(self) -> bool:
        """One heartbeat now; True when the key had to be written again."""
        with self._lock:
            if self._core.last is None:
                return False
            return self._eval(self._core.command_now())

    def close(self) -> None:
        """Stops the heartbeat (the key then expires within its TTL) and
        closes the connections. Marks nothing: see ``not_ready``."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._core.timeout + 1)
        self._redis.connection_pool.disconnect()
        _LIVE.discard(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        """Marks the agent stopping, then not ready (the exception, if any, is
        the reason), then closes. Redis errors are logged, never raised here."""
        reason = self._core.exit_reason(exc)
        try:
            self.stopping()
        except SignalError as e:
            self._core.exit_failed("stopping", e)
        try:
            self.not_ready(reason)
        except SignalError as e:
            self._core.exit_failed("not ready", e)
        self.close()

    def _send(self, cmd: Command) -> None:
        self._start_heartbeat()
        try:
            self._eval(cmd)
        except (RedisUnavailable, CommandRefused) as e:
            self._core.beat_failed(e)
            self._wake.set()
            raise

    def _eval(self, cmd: Command) -> bool:
        """FCALL of muster's function; EVAL of the script where the function
        is not loaded (and from then on, until EVAL is refused)."""
        core = self._core
        try:
            if core.prefer_eval:
                try:
                    changed = self._redis.eval(cmd.script, 2, *cmd.keys, *cmd.args)
                    return bool(changed == 1)
                except redis.exceptions.NoPermissionError:
                    core.prefer_eval = False
            try:
                changed = self._redis.fcall(cmd.function, 2, *cmd.keys, *cmd.args)
            except redis.exceptions.ResponseError as e:
                if not function_missing(e):
                    raise
                try:
                    changed = self._redis.eval(cmd.script, 2, *cmd.keys, *cmd.args)
                except redis.exceptions.NoPermissionError as refused:
                    raise core.no_functions(e, refused) from None
                core.prefer_eval = True
        except (redis.RedisError, OSError) as e:
            raise core.translate(e) from None
        return bool(changed == 1)

    def _start_heartbeat(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(
                target=self._heartbeat, name=f"muster-signal-{self.agent}", daemon=True
            )
            self._thread.start()

    def _heartbeat(self) -> None:
        delay = self._core.period
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                delay = self._core.beat_ok(self.heartbeat_now())
            except (RedisUnavailable, CommandRefused) as e:
                delay = self._core.beat_failed(e)
            except Exception:  # never let the thread die
                log.exception("muster_signal: heartbeat for agent %s failed", self.agent)
                delay = self._core.retry

    def _on_sigterm(self) -> None:
        self._core.sigterm = True
        if self._core.last is None:
            return
        try:
            self.stopping()
        except SignalError as e:
            log.warning("muster_signal: could not mark agent %s stopping: %s", self.agent, e)


def agent(
    name: Optional[str] = None,
    *,
    redis_url: Optional[str] = None,
    namespace: Optional[str] = None,
    ttl: float = DEFAULT_TTL,
    sigterm: bool = False,
    heartbeat: Optional[float] = None,
    timeout: float = 2.0,
) -> Client:
    """A ``Client`` for ``with``: ``with muster_signal.agent("memory-agent") as a:``.
    Leaving the block marks the agent stopping and then not ready (an
    exception becomes the reason). ``sigterm=True`` also calls ``handle_sigterm()``."""
    client = Client(name, redis_url, namespace, ttl, heartbeat=heartbeat, timeout=timeout)
    if sigterm:
        handle_sigterm()
    return client


def handle_sigterm(exit_code: Optional[int] = 0) -> threading.Event:
    """Installs a SIGTERM handler (main thread only): every live client of this
    process is marked ``stopping`` at once, then ``SystemExit(exit_code)`` is
    raised so ``with`` blocks and ``finally`` clauses run (``exit_code=None``:
    no exit, just mark and set the returned event)."""
    received = threading.Event()

    def handler(signum: int, frame: Optional[FrameType]) -> None:
        log.info("muster_signal: SIGTERM: marking agents stopping")
        for client in list(_LIVE):
            client._on_sigterm()
        received.set()
        if exit_code is not None:
            raise SystemExit(exit_code)

    signal.signal(signal.SIGTERM, handler)
    return received


_DEFAULTS: dict[str, Client] = {}
_DEFAULTS_LOCK = threading.Lock()


def _default(name: str) -> Client:
    with _DEFAULTS_LOCK:
        client = _DEFAULTS.get(name)
        if client is None:
            client = _DEFAULTS[name] = Client(name)
        return client


def _quiet(name: str, what: str, call: object) -> bool:
    assert callable(call)  # noqa: S101
    try:
        call()
    except (RedisUnavailable, CommandRefused) as e:
        log.warning(
            "muster_signal: could not mark agent %s %s now (%s); the heartbeat will", name, what, e
        )
        return False
    return True


def mark_agent_ready(name: str, meta: Optional[Mapping[str, object]] = None) -> bool:
    """Marks ``name`` ready (settings from ``MUSTER_REDIS_URL`` and
    ``MUSTER_NAMESPACE``) and keeps it so with a heartbeat. Returns False,
    logging a warning, when Redis could not take it now; the heartbeat
    then sends it when Redis answers. Raises only for bad arguments."""
    return _quiet(name, "ready", lambda: _default(name).ready(meta))


def mark_agent_not_ready(name: str, reason: str) -> bool:
    """Marks ``name`` not ready with ``reason``; like ``mark_agent_ready``."""
    return _quiet(name, "not ready", lambda: _default(name).not_ready(reason))


def mark_agent_starting(name: str, progress: str = "", extend: Optional[float] = None) -> bool:
    """Marks ``name`` starting with ``progress``; like ``mark_agent_ready``."""
    return _quiet(name, "starting", lambda: _default(name).starting(progress, extend))


def mark_agent_stopping(name: str) -> bool:
    """Marks ``name`` stopping; like ``mark_agent_ready``."""
    return _quiet(name, "stopping", lambda: _default(name).stopping())


logging.getLogger("muster_signal").addHandler(logging.NullHandler())
