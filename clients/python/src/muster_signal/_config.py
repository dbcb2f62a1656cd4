"""Settings from the environment muster itself reads, and URL redaction.

Why it exists: an agent in a muster stack gets ``MUSTER_REDIS_URL``,
``MUSTER_NAMESPACE`` and ``MUSTER_AGENT`` from its compose file, as the Rust
agents do, and a URL may carry a password that must never reach a log line
or an error message.
"""

from __future__ import annotations

import os
from typing import Optional
from urllib.parse import urlsplit

from .errors import InvalidUrl

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
_SCHEMES = ("redis", "rediss", "unix")


def redis_url(explicit: Optional[str]) -> str:
    """``explicit``, else ``MUSTER_REDIS_URL``, else ``redis://127.0.0.1:6379``."""
    url = explicit or os.environ.get("MUSTER_REDIS_URL") or DEFAULT_REDIS_URL
    return normalize_url(url)


def namespace(explicit: Optional[str], default: str) -> str:
    return explicit or os.environ.get("MUSTER_NAMESPACE") or default


def agent_name(explicit: Optional[str]) -> str:
    name = explicit or os.environ.get("MUSTER_AGENT")
    if not name:
        raise ValueError("no agent name: pass one, or set MUSTER_AGENT")
    return name


def normalize_url(url: str) -> str:
    """Checks the scheme; ``redis+unix://`` (accepted by muster) becomes ``unix://``."""
    if url.startswith("redis+unix://"):
        url = "unix://" + url[len("redis+unix://") :]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise InvalidUrl(f"invalid Redis URL {redact(url)}: {e}") from None
    if parts.scheme not in _SCHEMES:
        raise InvalidUrl(
            f"invalid Redis URL {redact(url)}: use redis://[user:password@]host:port[/db], "
            "rediss:// or unix:///path"
        )
    return url


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    user = user.split(":", 1)[0]
    netloc = f"{user}:***@{host}"
    return parts._replace(netloc=netloc).geturl()
