"""Unit tests of the pure protocol core: names, limits, the exact bytes of
values and events, state transitions, decoding, URL redaction, and that the
package's protocol files are the repository's canonical ones, byte for byte."""

from __future__ import annotations

import inspect
import json

import pytest
from conftest import REPO, down_from, up_from

import muster_signal
from muster_signal import _config, _protocol
from muster_signal._core import Core
from muster_signal._protocol import Down, Up, canonical_meta, command, dumps, next_down, next_up
from muster_signal.read import decode, plain_line


def test_shipped_protocol_files_are_the_canonical_ones() -> None:
    for name in ("assert.lua", "notready.lua", "protocol.json"):
        canonical = (REPO / "protocol" / name).read_bytes()
        shipped = _protocol._read(name).encode("utf-8")
        assert shipped == canonical, f"package copy of protocol/{name} differs: copy it over"


def test_constants() -> None:
    assert muster_signal.PROTOCOL_VERSION == 2
    assert muster_signal.DEFAULT_NAMESPACE == "muster"
    assert muster_signal.DEFAULT_TTL == 30.0
    assert muster_signal.DEFAULT_NOTREADY_TTL == 3600.0
    assert muster_signal.MAX_META_BYTES == 4096
    assert muster_signal.ready_key("muster", "a") == "muster:ready:a"
    assert muster_signal.notready_key("ns", "a") == "ns:notready:a"
    assert muster_signal.events_channel("ns") == "ns:events"
    assert muster_signal.agent_events_channel("ns", "a") == "ns:events:a"


def test_names() -> None:
    assert _protocol.validate_name("memory-agent_1.v2")
    assert _protocol.validate_name("a" * 128)
    for bad in ["", "a" * 129, "a b", "a:b", "a/b", "é", "a*", "a\n", None, 5]:
        with pytest.raises(muster_signal.InvalidName, match="agent name"):
            _protocol.validate_name(bad)
    assert _protocol.validate_namespace("stack:prod")
    for bad_ns in ["a b", "", "x" * 129]:
        with pytest.raises(muster_signal.InvalidNamespace):
            _protocol.validate_namespace(bad_ns)
    # ValueError subclasses: a bad argument is a bug, not an outage.
    assert issubclass(muster_signal.InvalidName, ValueError)


def test_meta_limit_and_canonical_form() -> None:
    assert canonical_meta("a", {"k": "x" * 4000})
    with pytest.raises(muster_signal.MetaTooLarge, match="4096"):
        canonical_meta("a", {"k": "x" * 4100})
    # Multi-byte text counts in UTF-8 bytes, as serde_json measures it.
    with pytest.raises(muster_signal.MetaTooLarge):
        canonical_meta("a", {"k": "é" * 2100})
    meta = canonical_meta("a", {"b": 1, "a": {"z": [1, (2, 3)], "y": None}, "c": True})
    assert dumps(meta) == '{"a":{"y":null,"z":[1,[2,3]]},"b":1,"c":true}'
    for bad in [{"s": {1, 2}}, {"f": float("nan")}, {1: "x"}, {"n": {2: "x"}}]:
        with pytest.raises(muster_signal.InvalidMeta):
            canonical_meta("a", bad)
    with pytest.raises(muster_signal.InvalidMeta):
        canonical_meta("a", ["not", "a", "mapping"])  # type: ignore[arg-type]
    # serde_json reads integers beyond 64 bits as floats: refused, not silently changed.
    assert canonical_meta("a", {"n": 2**64 - 1, "m": -(2**63)}) == {"m": -(2**63), "n": 2**64 - 1}
    for big in (2**64, -(2**63) - 1):
        with pytest.raises(muster_signal.InvalidMeta, match="64-bit"):
            canonical_meta("a", {"n": [big]})
    with pytest.raises(muster_signal.InvalidMeta, match="Unicode"):
        canonical_meta("a", {"k": "bad \udcff"})


def test_text_that_is_not_unicode_is_refused_before_it_is_recorded() -> None:
    core = Core("a", "redis://127.0.0.1:1", None, 30, None, 3600, 1)
    with pytest.raises(muster_signal.InvalidText, match="progress"):
        core.up("starting", progress="loading \udcff")
    with pytest.raises(muster_signal.InvalidText, match="reason"):
        core.down("bad \ud800 reason")
    assert core.last is None  # nothing for the heartbeat to fail on forever
    assert issubclass(muster_signal.InvalidText, ValueError)
    # An exception message with such text still becomes a reason Redis can store.
    reason = core.exit_reason(OSError("no file \udcff"))
    assert reason == "OSError: no file \\udcff"
    reason.encode("utf-8")


def test_seed_functions_have_the_guide_s_signatures() -> None:
    """An agent written to the usual guide changes only its import line."""
    ready = inspect.signature(muster_signal.mark_agent_ready)
    assert list(ready.parameters) == ["name", "meta"]
    assert ready.parameters["meta"].default is None
    not_ready = inspect.signature(muster_signal.mark_agent_not_ready)
    assert list(not_ready.parameters) == ["name", "reason"]
    assert all(p.default is inspect.Parameter.empty for p in not_ready.parameters.values())
    for p in [*ready.parameters.values(), *not_ready.parameters.values()]:
        assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


def test_dumps_escapes_like_serde_json() -> None:
    # serde_json: UTF-8 as is, \" \\ \n \r \t \b \f short, other controls \u00xx lowercase.
    text = 'é "q" \\ \n\r\t\b\f \x01\x1f \x7f \u2028 😀'
    want = '"é \\"q\\" \\\\ \\n\\r\\t\\b\\f \\u0001\\u001f \x7f \u2028 😀"'
    assert dumps(text) == want


def test_writes_the_shared_test_vectors() -> None:
    """protocol/vectors.json: the bytes the Rust crate's test proves serde_json
    writes for the same states (crates/muster-signal/src/protocol.rs)."""
    vectors = json.loads((REPO / "protocol" / "vectors.json").read_text(encoding="utf-8"))
    assert len(vectors["signal"]) >= 5 and len(vectors["not_ready"]) >= 2
    assert _protocol.function_library() == vectors["function_library"]
    assert vectors["events_channels"]
    for c in vectors["events_channels"]:
        assert _protocol.agent_events_channel(c["namespace"], c["agent"]) == c["channel"]
    for case in vectors["signal"]:
        up = up_from(case["agent"], case["state"])
        assert dumps(up.value()) == case["value"], case["name"]
        assert dumps(up.event(case["agent"], case["ttl_ms"])) == case["event"], case["name"]
        assert decode(case["value"].encode(), None).status == case["state"]["status"]
    for case in vectors["not_ready"]:
        down = down_from(case["state"])
        assert dumps(down.value()) == case["value"], case["name"]
        assert dumps(down.event(case["agent"])) == case["event"], case["name"]
        # Readers show the reason as one plain line (control characters escaped).
        assert decode(None, case["value"].encode()).reason == plain_line(case["state"]["reason"])


def test_floats_as_serde_json_writes_them() -> None:
    # Python's repr differs from serde_json only below 1e-4.
    for value, want in [
        (1e-05, "0.00001"),
        (-1.25e-05, "-0.0000125"),
        (1.5e-07, "1.5e-7"),
        (1e-300, "1e-300"),
        (0.0001, "0.0001"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (12.5, "12.5"),
        (-0.0, "-0.0"),
    ]:
        assert _protocol.format_float(value) == want
        assert float(want) == value  # still the same number


def test_value_and_event_bytes() -> None:
    up = Up("ready", 5, host="h", pid=7, meta={"model": "small"})
    assert dumps(up.value()) == (
        '{"status":"ready","since":5,"host":"h","pid":7,"meta":{"model":"small"}}'
    )
    assert dumps(up.event("a", 30000)) == (
        '{"agent":"a","status":"ready","since":5,"host":"h","pid":7,'
        '"meta":{"model":"small"},"ttl_ms":30000}'
    )
    starting = Up("starting", 5, progress="40%", deadline=9, host="h", pid=7)
    assert dumps(starting.value()) == (
        '{"status":"starting","since":5,"progress":"40%","deadline":9,"host":"h","pid":7}'
    )
    down = Down("db down", 5, host="h", pid=7)
    assert dumps(down.value()) == '{"reason":"db down","since":5,"host":"h","pid":7}'
    assert dumps(down.event("a")) == (
        '{"agent":"a","status":"not_ready","since":5,"reason":"db down","host":"h","pid":7}'
    )
    cmd = command("ns", "a", up, 30000, 3600000)
    assert cmd.script == _protocol.ASSERT_SCRIPT
    assert cmd.keys == ("ns:ready:a", "ns:notready:a")
    assert cmd.args[1:3] == (30000, "ns:events:a")
    cmd = command("ns", "a", down, 30000, 3600000)
    assert cmd.script == _protocol.NOT_READY_SCRIPT
    assert cmd.args[1] == 3600000


def test_transitions_keep_since_and_deadline() -> None:
    s1 = next_up(None, "starting", 100, progress="a", deadline=500)
    s2 = next_up(s1, "starting", 200, progress="b")
    assert (s2.since, s2.deadline, s2.progress) == (100, 500, "b")
    s3 = next_up(s2, "starting", 300, progress="c", deadline=900)
    assert (s3.since, s3.deadline) == (100, 900)
    r = next_up(s3, "ready", 400)
    assert (r.since, r.deadline) == (400, None)
    assert next_up(r, "ready", 500).since == 400
    d1 = next_down(r, "x", 600)
    assert next_down(d1, "x", 700).since == 600
    assert next_down(d1, "y", 800).since == 800
    assert next_up(d1, "ready", 900).since == 900


def test_decode() -> None:
    r = decode(b'{"status":"ready","since":5,"meta":{"m":"x"}}', None)
    assert r.is_ready and r.meta == {"m": "x"} and r.since_ms == 5
    r = decode(b'{"status":"starting","since":5,"progress":"40%","deadline":99,"extra":1}', None)
    assert (r.progress, r.deadline_ms, r.reason) == ("40%", 99, "starting: 40%")
    assert decode(b'{"status":"stopping","since":1}', None).reason == (
        "stopping (graceful shutdown)"
    )
    assert decode(None, b'{"reason":"db down","since":1}').reason == "db down"
    assert decode(None, b"plain text").reason == "plain text"
    assert decode(None, None).reason == muster_signal.NO_SIGNAL
    for raw in [
        b"not json",
        b'{"status":"bogus","since":1}',
        b'{"since":1}',
        b'{"status":"ready","since":"yesterday"}',
        b'{"status":"ready","since":-1}',
        b'{"status":"ready","since":1,"meta":[1]}',
        b"[1,2]",
        b"\xff\xfe",
        b"",
    ]:
        r = decode(raw, None)
        assert not r.is_ready
        assert r.reason.startswith("corrupt signal"), r.reason


def test_redaction_and_urls() -> None:
    assert _config.redact("redis://agent:s3cret@redis:6379/0") == "redis://agent:***@redis:6379/0"
    assert _config.redact("redis://:s3cret@redis:6379") == "redis://:***@redis:6379"
    assert _config.redact("redis://redis:6379") == "redis://redis:6379"
    assert _config.normalize_url("redis+unix:///run/r.sock") == "unix:///run/r.sock"
    with pytest.raises(muster_signal.InvalidUrl) as e:
        _config.normalize_url("http://user:s3cret@host:1")
    assert "s3cret" not in str(e.value) and "***" in str(e.value)
    with pytest.raises(muster_signal.InvalidUrl) as e:
        _config.normalize_url("redis://user:s3cret@host:notaport")
    assert "s3cret" not in str(e.value)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSTER_REDIS_URL", "redis://u:pw@127.0.0.1:1")
    monkeypatch.setenv("MUSTER_NAMESPACE", "stack:a")
    monkeypatch.setenv("MUSTER_AGENT", "env-agent")
    c = muster_signal.Client(ttl=4)
    assert (c.agent, c.namespace, c.ttl) == ("env-agent", "stack:a", 4.0)
    assert "pw" not in repr(c)
    c.close()
    monkeypatch.delenv("MUSTER_AGENT")
    with pytest.raises(ValueError, match="MUSTER_AGENT"):
        muster_signal.Client()
    with pytest.raises(ValueError, match="ttl"):
        muster_signal.Client("a", ttl=0)


def test_exit_reasons() -> None:
    core = Core("a", "redis://127.0.0.1:1", None, 30, None, 3600, 1)
    assert core.exit_reason(None) == "stopped"
    assert core.exit_reason(ValueError("boom")) == "ValueError: boom"
    assert core.exit_reason(RuntimeError()) == "RuntimeError"
    assert core.exit_reason(KeyboardInterrupt()) == "stopped on SIGINT"
    assert core.exit_reason(SystemExit(3)) == "stopped (exit 3)"
    core.sigterm = True
    assert core.exit_reason(SystemExit(0)) == "stopped on SIGTERM"
    assert core.period == 15.0 and core.retry == 0.25
