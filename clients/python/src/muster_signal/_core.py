"""What the sync and the asyncio client share: settings, the agent's last
state, the heartbeat's rhythm, error translation and the exit reason.

Why it exists: the two clients differ only in how they wait and talk to
Redis (a thread and ``redis.Redis``, a task and ``redis.asyncio``); keeping
every decision here means they cannot drift apart.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Optional

import redis.exceptions

from . import _config
from ._protocol import (
    DEFAULT_NAMESPACE,
    FUNCTION_LIBRARY_NAME,
    Command,
    State,
    canonical_meta,
    command,
    hostname,
    millis,
    next_down,
    next_up,
    notready_key,
    ready_key,
    validate_name,
    validate_namespace,
    validate_text,
)
from .errors import CommandRefused, RedisUnavailable, SignalError

log = logging.getLogger("muster_signal")

#: Retry period of a failing heartbeat (the Rust client's, too).
RETRY_SECONDS = 0.25
#: Shortest heartbeat period.
MIN_PERIOD_SECONDS = 0.05


def quiet_handshake(redis_class: type) -> dict[str, Any]:
    """Options that keep redis-py from sending, on each connect, commands the
    shipped ``agent`` ACL user may not run: ``CLIENT SETINFO`` (redis-py 5+)
    and ``CLIENT MAINT_NOTIFICATIONS`` (8+). redis-py ignores the refusals,
    but Redis 7.2+ records each one in ``ACL LOG`` (and every Redis counts
    them in ``INFO errorstats``); the Rust crate skips them too. Options this
    redis-py does not know are not passed (4.x sends neither)."""
    params = inspect.signature(redis_class).parameters
    opts: dict[str, Any] = {}
    if "driver_info" in params:
        opts["driver_info"] = None
    elif "lib_name" in params:
        opts["lib_name"] = None
        opts["lib_version"] = None
    if "maint_notifications_config" in params:
        from redis.maint_notifications import MaintNotificationsConfig

        opts["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return opts


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Core:
    """One agent's settings and last asserted state (no I/O)."""

    def __init__(
        self,
        agent: Optional[str],
        redis_url: Optional[str],
        namespace: Optional[str],
        ttl: float,
        heartbeat: Optional[float],
        notready_ttl: float,
        timeout: float,
    ) -> None:
        self.agent = validate_name(_config.agent_name(agent))
        self.url = _config.redis_url(redis_url)
        self.safe_url = _config.redact(self.url)
        self.namespace = validate_namespace(_config.namespace(namespace, DEFAULT_NAMESPACE))
        self.ttl_ms = millis(ttl, "ttl")
        self.notready_ttl_ms = millis(notready_ttl, "notready_ttl")
        period = heartbeat if heartbeat is not None else ttl / 2
        millis(period, "heartbeat")
        self.period = max(MIN_PERIOD_SECONDS, float(period))
        self.retry = min(RETRY_SECONDS, self.period)
        self.timeout = float(timeout)
        self.host = hostname()
        self.pid = os.getpid()
        self.last: Optional[State] = None
        self.failing = False
        self.sigterm = False
        #: FCALL found no function and EVAL worked: write with EVAL from now on
        #: (no refused FCALL per write) until EVAL is refused.
        self.prefer_eval = False

    def up(
        self,
        status: str,
        *,
        progress: Optional[str] = None,
        extend: Optional[float] = None,
        meta: Optional[Mapping[str, object]] = None,
    ) -> Command:
        """Records a starting/ready/stopping state and returns its ``EVAL``."""
        if progress is not None:
            validate_text(self.agent, "progress", progress)
        wire_meta = canonical_meta(self.agent, meta)
        now = now_ms()
        deadline = now + millis(extend, "extend") if extend is not None else None
        self.last = next_up(
            self.last,
            status,
            now,
            progress=progress,
            deadline=deadline,
            meta=wire_meta,
            host=self.host,
            pid=self.pid,
        )
        return self.command_now()

    def down(self, reason: str) -> Command:
        """Records a not-ready state and returns its ``EVAL``."""
        validate_text(self.agent, "reason", reason)
        self.last = next_down(self.last, reason, now_ms(), host=self.host, pid=self.pid)
        return self.command_now()

    def command_now(self) -> Command:
        assert self.last is not None  # noqa: S101 - callers set it first
        return command(self.namespace, self.agent, self.last, self.ttl_ms, self.notready_ttl_ms)

    def read_keys(self, agent: Optional[str]) -> tuple[str, str]:
        name = validate_name(agent) if agent is not None else self.agent
        return ready_key(self.namespace, name), notready_key(self.namespace, name)

    def translate(self, e: BaseException) -> SignalError:
        """A redis-py error as this package's documented error."""
        if isinstance(e, SignalError):
            return e
        if isinstance(e, (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
            return CommandRefused(f"Redis at {self.safe_url} refused: {e}")
        return RedisUnavailable(f"Redis at {self.safe_url} unavailable: {e}")

    def no_functions(self, fcall: BaseException, refused: BaseException) -> SignalError:
        """FCALL found no function and this user may not EVAL the script."""
        return CommandRefused(
            f"Redis at {self.safe_url}: muster's functions ({FUNCTION_LIBRARY_NAME}) are not "
            "loaded and this user may not EVAL the scripts: start muster against this Redis "
            "first (it loads them when it connects), or grant +eval "
            f"(FCALL said: {fcall}; EVAL said: {refused})"
        )

    def beat_ok(self, changed: bool) -> float:
        """After a heartbeat that worked; returns the delay to the next one."""
        if self.failing:
            log.info(
                "muster_signal: Redis at %s reachable again; agent %s's %s re-asserted",
                self.safe_url,
                self.agent,
                _describe(self.last),
            )
        elif changed:
            log.info(
                "muster_signal: re-asserted agent %s's %s (the key was missing or changed)",
                self.agent,
                _describe(self.last),
            )
        self.failing = False
        return self.period

    def beat_failed(self, e: BaseException) -> float:
        """After a heartbeat, or a call, that Redis did not take: warns once
        per outage; returns the delay to the next try."""
        if not self.failing:
            log.warning(
                "muster_signal: could not send agent %s's %s (%s); retrying every %.2fs",
                self.agent,
                _describe(self.last),
                self.translate(e),
                self.retry,
            )
        self.failing = True
        return self.retry

    def exit_failed(self, step: str, e: SignalError) -> None:
        """A mark on the way out that Redis did not take: logged, never raised."""
        log.warning("muster_signal: could not mark agent %s %s: %s", self.agent, step, e)

    def exit_reason(self, exc: Optional[BaseException]) -> str:
        """The not-ready reason when a ``with`` block ends."""
        if exc is None:
            return "stopped"
        if isinstance(exc, SystemExit):
            return "stopped on SIGTERM" if self.sigterm else f"stopped (exit {exc.code})"
        if isinstance(exc, KeyboardInterrupt):
            return "stopped on SIGINT"
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        # A message may carry undecodable bytes (lone surrogates): keep them visible, as \udcxx.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return text[:512]


def _describe(state: Optional[State]) -> str:
    if state is None:
        return "nothing"
    if hasattr(state, "status"):
        return f"'{state.status}'"
    return "'not ready'"
