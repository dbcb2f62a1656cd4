"""The ready-signal protocol as pure functions: key names, limits, the JSON
values and events, and the state an agent last asserted.

Why it exists: the sync and the asyncio client must send exactly the same
bytes as muster's Rust crate, so everything that decides *what* to send lives
here, once, with no I/O and no clock of its own (callers pass ``now_ms``).
The constants and Lua scripts are read from the package's ``protocol/``
files, byte-identical copies of the repository's canonical ``protocol/``
directory (a test on each side proves it). docs/protocol.md is the spec.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from json.encoder import encode_basestring as _string
from typing import Optional, Union

from .errors import InvalidMeta, InvalidName, InvalidNamespace, InvalidText, MetaTooLarge


def _read(name: str) -> str:
    return (resources.files(__package__) / "protocol" / name).read_text(encoding="utf-8")


ASSERT_SCRIPT: str = _read("assert.lua")
NOT_READY_SCRIPT: str = _read("notready.lua")
_SPEC = json.loads(_read("protocol.json"))

PROTOCOL_VERSION: int = int(_SPEC["version"])
DEFAULT_NAMESPACE: str = str(_SPEC["default_namespace"])
DEFAULT_TTL: float = int(_SPEC["default_ttl_ms"]) / 1000
DEFAULT_NOTREADY_TTL: float = int(_SPEC["default_notready_ttl_ms"]) / 1000
MAX_NAME_LEN: int = int(_SPEC["max_name_len"])
MAX_META_BYTES: int = int(_SPEC["max_meta_bytes"])
_KEYS: dict[str, str] = {str(k): str(v) for k, v in _SPEC["keys"].items()}
#: The Redis 7 function library muster loads; agents call its functions with
#: FCALL, so their ACL user needs no EVAL (docs/protocol.md, "Functions").
FUNCTION_LIBRARY_NAME: str = str(_SPEC["functions"]["library"])
ASSERT_FUNCTION: str = str(_SPEC["functions"]["assert"])
NOT_READY_FUNCTION: str = str(_SPEC["functions"]["notready"])

#: Reason when neither key exists.
NO_SIGNAL = "no ready signal (never sent, expired, or Redis lost it)"
#: Reason when the ready key expired (seen through keyspace notifications).
EXPIRED = "ready signal expired (no heartbeat within its TTL)"

# Integers in meta must fit serde_json's i64 / u64, or muster reads them as floats.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9._:-]+")

# A JSON value, as meta may hold it.
JSON = Union[None, bool, int, float, str, list["JSON"], dict[str, "JSON"]]


def _key(kind: str, namespace: str, agent: str = "") -> str:
    return _KEYS[kind].replace("{ns}", namespace).replace("{agent}", agent)


def ready_key(namespace: str, agent: str) -> str:
    """``{ns}:ready:{agent}``: the JSON signal value, with a TTL."""
    return _key("ready", namespace, agent)


def notready_key(namespace: str, agent: str) -> str:
    """``{ns}:notready:{agent}``: why the agent is not ready."""
    return _key("notready", namespace, agent)


def agent_events_channel(namespace: str, agent: str) -> str:
    """``{ns}:events:{agent}``: the agent's own channel, where every change
    is published (protocol version 2)."""
    return _key("events", namespace, agent)


def events_channel(namespace: str) -> str:
    """``{ns}:events``: the shared channel version-1 clients published on
    (muster still listens to it, as a hint)."""
    return _key("legacy_events", namespace)


def validate_name(name: object) -> str:
    """Agent names: ``[A-Za-z0-9._-]{1,128}``."""
    if not isinstance(name, str):
        raise InvalidName(repr(name), "not a string")
    if not name:
        raise InvalidName(name, "empty")
    if len(name) > MAX_NAME_LEN:
        raise InvalidName(name, f"{len(name)} characters, at most {MAX_NAME_LEN} allowed")
    if not _NAME_RE.fullmatch(name):
        bad = next(c for c in name if not _NAME_RE.fullmatch(c))
        raise InvalidName(name, f"character {bad!r} not allowed (use A-Z a-z 0-9 . _ -)")
    return name


def validate_namespace(namespace: object) -> str:
    """Namespaces follow the name rule and may also contain ``:``."""
    if (
        not isinstance(namespace, str)
        or len(namespace) > MAX_NAME_LEN
        or not _NAMESPACE_RE.fullmatch(namespace)
    ):
        raise InvalidNamespace(repr(namespace), MAX_NAME_LEN)
    return namespace


def _canonical(agent: str, value: object, path: str) -> JSON:
    """A copy of ``value`` with every object's keys sorted, as serde_json's
    map (a BTreeMap) writes them; refuses what JSON cannot hold."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidMeta(
                agent, f"{path} is {value}, outside the 64-bit integers muster reads exactly"
            )
        return int(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidMeta(agent, f"{path} is {value!r}, which JSON cannot hold")
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, JSON] = {}
        for k in sorted(value.keys(), key=_sort_key(agent, path)):
            out[str(k)] = _canonical(agent, value[k], f"{path}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(agent, v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise InvalidMeta(agent, f"{path} is a {type(value).__name__}, not a JSON value")


def _sort_key(agent: str, path: str) -> Callable[[object], str]:
    def key(k: object) -> str:
        if not isinstance(k, str):
            raise InvalidMeta(agent, f"{path} has the key {k!r}; JSON object keys are strings")
        return k

    return key


def dumps(value: JSON) -> str:
    """Compact JSON exactly as serde_json writes it: UTF-8 as is, control
    characters as ``\\u00xx``, floats as ``format_float`` (docs/protocol.md, "Values")."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def _encode(value: JSON, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _encode(v, out)
        out.append("}")
    else:
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _encode(v, out)
        out.append("]")


def format_float(value: float) -> str:
    """A finite float as serde_json writes it: the shortest digits that read
    back exactly (``repr``'s), in plain notation for 1e-5 <= |x| < 1e16
    (``12.5``, ``0.00001``, ``100.0``), otherwise ``1.5e-7`` / ``1e+16``
    (no zero padding in the exponent, ``+`` on positive ones). Python's
    ``repr`` differs only below 1e-4: ``1e-05``, ``1.5e-07``."""
    text = float.__repr__(value)
    if "e" not in text:
        return text
    mantissa, exp_text = text.split("e")
    exp = int(exp_text)
    if exp == -5:
        sign = "-" if mantissa.startswith("-") else ""
        return sign + "0.0000" + mantissa.lstrip("-").replace(".", "")
    return f"{mantissa}e{'+' if exp > 0 else '-'}{abs(exp)}"


def canonical_meta(agent: str, meta: Optional[Mapping[str, object]]) -> dict[str, JSON]:
    """Meta as it goes on the wire: keys sorted, at most 4 KiB as JSON."""
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise InvalidMeta(agent, f"meta is a {type(meta).__name__}, not a mapping")
    out = _canonical(agent, meta, "meta")
    assert isinstance(out, dict)  # noqa: S101 - a Mapping canonicalizes to a dict
    try:
        size = len(dumps(out).encode("utf-8"))
    except UnicodeEncodeError as e:
        raise InvalidMeta(agent, f"meta holds text that is not valid Unicode ({e.reason})") from e
    if size > MAX_META_BYTES:
        raise MetaTooLarge(agent, size, MAX_META_BYTES)
    return out


def validate_text(agent: str, what: str, text: object) -> str:
    """``progress`` and ``reason``: strings that encode to UTF-8 (checked
    here, so a bad one is refused before it becomes the state to re-assert)."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, not {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidText(agent, what, e.reason) from None
    return text


def millis(seconds: float, what: str) -> int:
    """Seconds (as the Python API takes them) to whole milliseconds, at least 1."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if not seconds > 0:
        raise ValueError(f"{what} must be more than 0 seconds, got {seconds!r}")
    return max(1, round(seconds * 1000))


def hostname() -> str:
    """This machine's (container's) host name, for the ``host`` field."""
    h = os.environ.get("HOSTNAME", "").strip()
    if h:
        return h
    for path in ("/proc/sys/kernel/hostname", "/etc/hostname"):
        try:
            with open(path, encoding="utf-8") as f:
                h = f.read().strip()
        except OSError:
            continue
        if h:
            return h
    return "unknown"


@dataclass(frozen=True)
class Up:
    """A starting / ready / stopping value, as the ready key holds it."""

    status: str
    since: int
    progress: Optional[str] = None
    deadline: Optional[int] = None
    host: Optional[str] = None
    pid: Optional[int] = None
    meta: dict[str, JSON] = field(default_factory=dict)

    def value(self) -> dict[str, JSON]:
        v: dict[str, JSON] = {"status": self.status, "since": self.since}
        _put(v, "progress", self.progress)
        _put(v, "deadline", self.deadline)
        _put(v, "host", self.host)
        _put(v, "pid", self.pid)
        if self.meta:
            v["meta"] = self.meta
        return v

    def event(self, agent: str, ttl_ms: int) -> dict[str, JSON]:
        e: dict[str, JSON] = {"agent": agent, "status": self.status, "since": self.since}
        _put(e, "progress", self.progress)
        _put(e, "deadline", self.deadline)
        _put(e, "host", self.host)
        _put(e, "pid", self.pid)
        if self.meta:
            e["meta"] = self.meta
        e["ttl_ms"] = ttl_ms
        return e


@dataclass(frozen=True)
class Down:
    """A not-ready reason, as the not-ready key holds it."""

    reason: str
    since: int
    host: Optional[str] = None
    pid: Optional[int] = None

    def value(self) -> dict[str, JSON]:
        v: dict[str, JSON] = {"reason": self.reason, "since": self.since}
        _put(v, "host", self.host)
        _put(v, "pid", self.pid)
        return v

    def event(self, agent: str) -> dict[str, JSON]:
        e: dict[str, JSON] = {"agent": agent, "status": "not_ready", "since": self.since}
        e["reason"] = self.reason
        _put(e, "host", self.host)
        _put(e, "pid", self.pid)
        return e


State = Union[Up, Down]


def _put(d: dict[str, JSON], key: str, value: Optional[Union[str, int]]) -> None:
    if value is not None:
        d[key] = value


def next_up(
    last: Optional[State],
    status: str,
    now_ms: int,
    *,
    progress: Optional[str] = None,
    deadline: Optional[int] = None,
    meta: Optional[dict[str, JSON]] = None,
    host: Optional[str] = None,
    pid: Optional[int] = None,
) -> Up:
    """The value to assert next. ``since`` is kept while the status stays the
    same; a ``starting`` deadline is kept until a new one is given."""
    if isinstance(last, Up) and last.status == status:
        since = last.since
        if deadline is None:
            deadline = last.deadline
    else:
        since = now_ms
    return Up(
        status=status,
        since=since,
        progress=progress,
        deadline=deadline if status == "starting" else None,
        host=host,
        pid=pid,
        meta=meta or {},
    )


def next_down(
    last: Optional[State],
    reason: str,
    now_ms: int,
    *,
    host: Optional[str] = None,
    pid: Optional[int] = None,
) -> Down:
    """The not-ready value to store next; ``since`` is kept while the reason stays."""
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a string, not {type(reason).__name__}")
    since = last.since if isinstance(last, Down) and last.reason == reason else now_ms
    return Down(reason=reason, since=since, host=host, pid=pid)


@dataclass(frozen=True)
class Command:
    """One write: ``FCALL`` of ``function``, or ``EVAL`` of the same
    ``script`` where the function is not loaded; 2 keys, 4 arguments."""

    function: str
    script: str
    keys: tuple[str, str]
    args: tuple[str, int, str, str]


def command(namespace: str, agent: str, state: State, ttl_ms: int, notready_ttl_ms: int) -> Command:
    """The exact ``EVAL`` that asserts ``state`` (docs/protocol.md, "Scripts")."""
    keys = (ready_key(namespace, agent), notready_key(namespace, agent))
    channel = agent_events_channel(namespace, agent)
    if isinstance(state, Up):
        args = (dumps(state.value()), ttl_ms, channel, dumps(state.event(agent, ttl_ms)))
        return Command(ASSERT_FUNCTION, ASSERT_SCRIPT, keys, args)
    args = (dumps(state.value()), notready_ttl_ms, channel, dumps(state.event(agent)))
    return Command(NOT_READY_FUNCTION, NOT_READY_SCRIPT, keys, args)


def function_library() -> str:
    """The library text muster loads with ``FUNCTION LOAD REPLACE`` (the same
    bytes as the Rust crate's ``FUNCTION_LIBRARY``; test vectors pin it)."""
    return (
        f"#!lua name={FUNCTION_LIBRARY_NAME}\n"
        f"redis.register_function('{ASSERT_FUNCTION}', function(KEYS, ARGV)\n"
        f"{ASSERT_SCRIPT}end)\n"
        f"redis.register_function('{NOT_READY_FUNCTION}', function(KEYS, ARGV)\n"
        f"{NOT_READY_SCRIPT}end)\n"
    )


def function_missing(e: BaseException) -> bool:
    """``FCALL`` failed because the function is not there (not loaded yet,
    or Redis before 7) or this user may not run ``FCALL``: then ``EVAL`` of
    the same script is tried. Not when the call itself failed."""
    text = str(e).lower()
    if "no permissions" in text:
        return "'fcall'" in text
    return "function not found" in text or "unknown command" in text
