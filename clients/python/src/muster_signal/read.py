"""Turning what Redis holds into a ``Readiness``, as ``muster check`` does.

Why it exists: an agent (or a test, or a Python healthcheck) can read any
agent's readiness with one ``MGET``, and foreign data never raises: a value
that is not the protocol's JSON reads as not ready, "corrupt signal (...)".
The rules are the Rust crate's ``Readiness::decode`` (docs/protocol.md, "Reading").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional, Union

from ._protocol import EXPIRED, JSON, NO_SIGNAL

__all__ = [
    "EXPIRED",
    "MAX_TEXT_CHARS",
    "MAX_VALUE_BYTES",
    "NO_SIGNAL",
    "Readiness",
    "decode",
    "plain_line",
]

_U64 = 2**64
_U32 = 2**32

#: Agent text (progress, not-ready reason) is read as one line of at most
#: this many characters (docs/protocol.md, "What readers do with foreign data").
MAX_TEXT_CHARS = 512
#: Values larger than this are not parsed.
MAX_VALUE_BYTES = 16 * 1024

_INVISIBLE = frozenset(
    [0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)
_SHORT_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}


def plain_line(text: str) -> str:
    """Agent text as one plain line, exactly as the Rust reader writes it:
    control characters, line separators and bidi overrides as escapes
    (``\\n``, ``\\u{1b}``), cut to ``MAX_TEXT_CHARS`` characters plus ``…``."""
    out = []
    for n, ch in enumerate(text):
        if n == MAX_TEXT_CHARS:
            out.append("\u2026")
            break
        c = ord(ch)
        if c < 0x20 or 0x7F <= c <= 0x9F or c in _INVISIBLE:
            out.append(_SHORT_ESCAPES.get(ch, f"\\u{{{c:x}}}"))
        else:
            out.append(ch)
    return "".join(out)


def _too_large(what: str, raw: bytes) -> str:
    return f"{what} of {len(raw)} bytes, over the {MAX_VALUE_BYTES}-byte limit"


@dataclass(frozen=True)
class Readiness:
    """One agent's readiness: ``status`` is ``ready``, ``starting``,
    ``stopping``, ``not_ready`` or ``corrupt``."""

    status: str
    since_ms: Optional[int] = None
    progress: Optional[str] = None
    deadline_ms: Optional[int] = None
    meta: dict[str, JSON] = field(default_factory=dict)
    detail: str = ""  # the not-ready reason, or what is wrong with a corrupt value

    @property
    def is_ready(self) -> bool:
        return self.status == "ready"

    @property
    def reason(self) -> str:
        """Why the agent is not ready, for humans (``""`` when ready)."""
        if self.status == "ready":
            return ""
        if self.status == "starting":
            return f"starting: {self.progress}" if self.progress else "starting"
        if self.status == "stopping":
            return "stopping (graceful shutdown)"
        if self.status == "corrupt":
            return f"corrupt signal ({self.detail})"
        return self.detail


class _Corrupt(Exception):
    pass


def _opt(value: dict[str, object], key: str, kind: type, limit: int = 0) -> object:
    v = value.get(key)
    if v is None:
        return None
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < limit:
            raise _Corrupt(f"wrong fields: {key} is not an unsigned integer")
    elif not isinstance(v, kind):
        raise _Corrupt(f"wrong fields: {key} is not a {kind.__name__}")
    return v


def _since(value: dict[str, object]) -> int:
    if "since" not in value:
        raise _Corrupt("wrong fields: missing field `since`")
    since = _opt(value, "since", int, _U64)
    if since is None:
        raise _Corrupt("wrong fields: since is null")
    assert isinstance(since, int)  # noqa: S101 - _opt checked it
    return since


def _decode_ready(raw: bytes) -> Readiness:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _Corrupt("not JSON") from None
    if not isinstance(value, dict):
        raise _Corrupt("wrong fields: not a JSON object")
    status = value.get("status")
    if status not in ("starting", "ready", "stopping"):
        raise _Corrupt(f"wrong fields: status {status!r} is not starting, ready or stopping")
    since = _since(value)
    progress = _opt(value, "progress", str)
    deadline = _opt(value, "deadline", int, _U64)
    _opt(value, "host", str)
    _opt(value, "pid", int, _U32)
    meta = value.get("meta", {})
    if not isinstance(meta, dict):
        raise _Corrupt("wrong fields: meta is not an object")
    if status == "ready":
        return Readiness("ready", since_ms=since, meta=meta)
    if status == "starting":
        assert progress is None or isinstance(progress, str)  # noqa: S101
        assert deadline is None or isinstance(deadline, int)  # noqa: S101
        text = None if progress is None else plain_line(progress)
        return Readiness("starting", since_ms=since, progress=text, deadline_ms=deadline)
    return Readiness("stopping", since_ms=since)


def _decode_notready(raw: bytes) -> Readiness:
    if len(raw) > MAX_VALUE_BYTES:
        return Readiness("not_ready", detail=_too_large("not-ready reason", raw))
    try:
        value = json.loads(raw.decode("utf-8"))
        if isinstance(value, dict) and isinstance(value.get("reason"), str):
            since = _since(value)
            return Readiness("not_ready", since_ms=since, detail=plain_line(value["reason"]))
    except (UnicodeDecodeError, ValueError, _Corrupt):
        pass
    # A plain-text reason (e.g. written with redis-cli) is the reason itself.
    return Readiness("not_ready", detail=plain_line(raw.decode("utf-8", errors="replace")))


def decode(ready: Union[bytes, str, None], notready: Union[bytes, str, None]) -> Readiness:
    """Reads the raw values of the ready key and the not-ready key."""
    if isinstance(ready, str):
        ready = ready.encode("utf-8")
    if isinstance(notready, str):
        notready = notready.encode("utf-8")
    if ready is not None:
        if len(ready) > MAX_VALUE_BYTES:
            return Readiness("corrupt", detail=_too_large("value", ready))
        try:
            return _decode_ready(ready)
        except _Corrupt as e:
            return Readiness("corrupt", detail=str(e))
    if notready is None:
        return Readiness("not_ready", detail=NO_SIGNAL)
    return _decode_notready(notready)
