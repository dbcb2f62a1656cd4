"""The errors muster_signal raises, in one place so agents can catch them.

Why it exists: an agent must be able to tell "my call was wrong" (a bad name,
meta too large: a bug, raised at once, subclasses of ``ValueError``) from
"Redis is not there right now" (``RedisUnavailable``: the client keeps the
state and its heartbeat re-asserts it when Redis answers again). No message
here ever holds a password.
"""

from __future__ import annotations


class SignalError(Exception):
    """Base of every error this package raises."""


class InvalidName(SignalError, ValueError):
    """The agent name breaks ``[A-Za-z0-9._-]{1,128}``."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid agent name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class InvalidNamespace(SignalError, ValueError):
    """The namespace breaks ``[A-Za-z0-9._:-]{1,128}``."""

    def __init__(self, namespace: str, max_len: int) -> None:
        super().__init__(f"invalid namespace {namespace}: use 1-{max_len} of A-Z a-z 0-9 . _ - :")


class MetaTooLarge(SignalError, ValueError):
    """``meta`` is more than 4 KiB as JSON."""

    def __init__(self, agent: str, size: int, limit: int) -> None:
        super().__init__(
            f"meta for agent {agent!r} is {size} bytes as JSON, at most {limit} allowed"
        )
        self.size = size


class InvalidMeta(SignalError, ValueError):
    """``meta`` holds something JSON cannot (a set, NaN, a non-string key, ...)."""

    def __init__(self, agent: str, why: str) -> None:
        super().__init__(f"meta for agent {agent!r}: {why}")


class InvalidText(SignalError, ValueError):
    """A ``progress`` or ``reason`` that is not valid Unicode text (a lone
    surrogate, as from ``os.fsdecode`` of bad bytes): Redis stores UTF-8."""

    def __init__(self, agent: str, what: str, why: str) -> None:
        super().__init__(f"{what} for agent {agent!r} is not valid Unicode text ({why})")


class InvalidUrl(SignalError, ValueError):
    """A Redis URL that does not parse (shown with its password replaced by ***)."""


class RedisUnavailable(SignalError, ConnectionError):
    """Redis could not be reached, or did not answer in time.

    The client has recorded the state it was asked for: its heartbeat keeps
    retrying every 250 ms and re-asserts that state as soon as Redis answers.
    """


class CommandRefused(SignalError):
    """Redis answered with an error: wrong password, an ACL that does not
    allow the command or key (``NOPERM``), or a read-only replica. Fix the
    URL or the user's ACL (docs/protocol.md, "ACL"); the heartbeat retries."""
