"""Ready signals for Python agents supervised by muster.

An agent says it is starting, ready, not ready or stopping by writing one
Redis key with a TTL and publishing the change, atomically, exactly as
muster's Rust crate ``muster-signal`` does (docs/protocol.md in the muster
repository is the protocol's specification). muster, ``muster check`` and the
health endpoint read it.

Seed style, settings from ``MUSTER_REDIS_URL`` / ``MUSTER_NAMESPACE``::

    from muster_signal import mark_agent_ready, mark_agent_not_ready
    mark_agent_ready("memory-agent", {"port": 8080})
    mark_agent_not_ready("memory-agent", "graceful shutdown")

One object per agent, marked not ready when the block ends::

    with muster_signal.agent("memory-agent", sigterm=True) as a:
        a.starting("loading model 40%", extend=300)
        a.ready({"model": "small"})
        serve()

asyncio: ``muster_signal.aio.AsyncClient`` / ``muster_signal.aio.agent``.
"""

from __future__ import annotations

from ._protocol import (
    DEFAULT_NAMESPACE,
    DEFAULT_NOTREADY_TTL,
    DEFAULT_TTL,
    MAX_META_BYTES,
    MAX_NAME_LEN,
    PROTOCOL_VERSION,
    agent_events_channel,
    events_channel,
    notready_key,
    ready_key,
)
from .client import (
    Client,
    agent,
    handle_sigterm,
    mark_agent_not_ready,
    mark_agent_ready,
    mark_agent_starting,
    mark_agent_stopping,
)
from .errors import (
    CommandRefused,
    InvalidMeta,
    InvalidName,
    InvalidNamespace,
    InvalidText,
    InvalidUrl,
    MetaTooLarge,
    RedisUnavailable,
    SignalError,
)
from .read import EXPIRED, NO_SIGNAL, Readiness

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_NOTREADY_TTL",
    "DEFAULT_TTL",
    "EXPIRED",
    "MAX_META_BYTES",
    "MAX_NAME_LEN",
    "NO_SIGNAL",
    "PROTOCOL_VERSION",
    "Client",
    "CommandRefused",
    "InvalidMeta",
    "InvalidName",
    "InvalidNamespace",
    "InvalidText",
    "InvalidUrl",
    "MetaTooLarge",
    "Readiness",
    "RedisUnavailable",
    "SignalError",
    "agent",
    "agent_events_channel",
    "events_channel",
    "handle_sigterm",
    "mark_agent_not_ready",
    "mark_agent_ready",
    "mark_agent_starting",
    "mark_agent_stopping",
    "notready_key",
    "ready_key",
]
