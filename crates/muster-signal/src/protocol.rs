//! The ready-signal protocol: key names, the JSON values, the event message,
//! name and size limits, and the two Lua scripts every write goes through.
//!
//! Any language can speak it: docs/protocol.md is the specification, and the
//! scripts and constants live in the repository's `protocol/` directory, which
//! this file loads with `include_str!` (the Python client ships a copy that its
//! tests and the test below prove byte-identical). This module is the crate's
//! leaf: `client` and `read` both build on it and not on each other.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::SignalError;

/// Key prefix used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "muster";
/// Lifetime of the ready key; a live agent refreshes it every TTL/2.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// How long the not-ready reason key is kept.
pub const DEFAULT_NOTREADY_TTL: Duration = Duration::from_secs(3600);
/// Longest agent name (and namespace).
pub const MAX_NAME_LEN: usize = 128;
/// Largest `meta` object, as serialized JSON.
pub const MAX_META_BYTES: usize = 4096;

/// Arbitrary agent metadata (`model`, `version`, …) carried in the ready value.
pub type Meta = serde_json::Map<String, serde_json::Value>;

/// `{ns}:ready:{agent}`: the JSON [`SignalValue`], with a TTL.
pub fn ready_key(namespace: &str, agent: &str) -> String {
    format!("{namespace}:ready:{agent}")
}

/// `{ns}:notready:{agent}`: the JSON [`NotReadyValue`] (why the agent is not ready).
pub fn notready_key(namespace: &str, agent: &str) -> String {
    format!("{namespace}:notready:{agent}")
}

/// `{ns}:events:{agent}`: the agent's own channel, where clients publish
/// every change as an [`Event`] (protocol version 2). An ACL can confine a
/// publisher to it as it confines the agent's keys, so muster applies an
/// event heard here without reading the keys.
pub fn agent_events_channel(namespace: &str, agent: &str) -> String {
    format!("{namespace}:events:{agent}")
}

/// `{ns}:events:*`: the pattern muster subscribes to for every agent's channel.
pub fn agent_events_pattern(namespace: &str) -> String {
    format!("{namespace}:events:*")
}

/// `{ns}:events`: the shared channel version-1 clients publish on. muster
/// still listens to it, taking its events as hints (it reads the keys).
pub fn events_channel(namespace: &str) -> String {
    format!("{namespace}:events")
}

/// `{ns}.ready.{agent}`: the NATS subject the CLI also publishes events on.
pub fn nats_subject(namespace: &str, agent: &str) -> String {
    format!("{namespace}.ready.{agent}")
}

/// The agent name inside a ready key, if the key belongs to this namespace.
pub fn agent_of_ready_key<'a>(namespace: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(namespace)?.strip_prefix(":ready:")
}

/// Agent names: `[A-Za-z0-9._-]{1,128}`.
pub fn validate_name(name: &str) -> Result<(), SignalError> {
    let bad = |reason: String| {
        Err(SignalError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!(
            "{} characters, at most {MAX_NAME_LEN} allowed",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!(
            "character {c:?} not allowed (use A-Z a-z 0-9 . _ -)"
        ));
    }
    Ok(())
}

/// Namespaces follow the name rule and may also contain `:`.
pub fn validate_namespace(namespace: &str) -> Result<(), SignalError> {
    let ok = !namespace.is_empty()
        && namespace.len() <= MAX_NAME_LEN
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if ok {
        Ok(())
    } else {
        Err(SignalError::InvalidNamespace(namespace.to_string()))
    }
}

/// Meta must serialize to at most [`MAX_META_BYTES`].
pub fn validate_meta(agent: &str, meta: &Meta) -> Result<(), SignalError> {
    let bytes = serde_json::to_string(meta).map(|s| s.len()).unwrap_or(0);
    if bytes > MAX_META_BYTES {
        return Err(SignalError::MetaTooLarge {
            agent: agent.to_string(),
            bytes,
        });
    }
    Ok(())
}

/// What the ready key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Starting,
    Ready,
    Stopping,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Ready => "ready",
            Status::Stopping => "stopping",
        }
    }
}

/// The JSON value of `{ns}:ready:{agent}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalValue {
    pub status: Status,
    /// Unix ms when this status began (kept across heartbeats).
    pub since: u64,
    /// Progress text while starting ("loading model 40%").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Unix ms: while `starting`, the supervisor must not give up before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
}

/// The JSON value of `{ns}:notready:{agent}`. A plain-text value is read as the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotReadyValue {
    pub reason: String,
    pub since: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// The status field of an [`Event`]: the three key states plus `not_ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Starting,
    Ready,
    Stopping,
    NotReady,
}

/// One message on `{ns}:events:{agent}` (`{ns}:events` from version-1 clients; and NATS `{ns}.ready.{agent}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub agent: String,
    pub status: EventStatus,
    pub since: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
    /// Why (not_ready only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// The key's TTL in ms (not for not_ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

impl Event {
    pub fn from_value(agent: &str, value: &SignalValue, ttl: Duration) -> Event {
        Event {
            agent: agent.to_string(),
            status: match value.status {
                Status::Starting => EventStatus::Starting,
                Status::Ready => EventStatus::Ready,
                Status::Stopping => EventStatus::Stopping,
            },
            since: value.since,
            progress: value.progress.clone(),
            deadline: value.deadline,
            reason: None,
            host: value.host.clone(),
            pid: value.pid,
            meta: value.meta.clone(),
            ttl_ms: Some(ttl.as_millis() as u64),
        }
    }

    pub fn from_not_ready(agent: &str, value: &NotReadyValue) -> Event {
        Event {
            agent: agent.to_string(),
            status: EventStatus::NotReady,
            since: value.since,
            progress: None,
            deadline: None,
            reason: Some(value.reason.clone()),
            host: value.host.clone(),
            pid: value.pid,
            meta: Meta::new(),
            ttl_ms: None,
        }
    }
}

/// The ASSERT script (`protocol/assert.lua`, shared with every client of the
/// protocol): sets the ready key unless it already holds exactly this value
/// (then only refreshes its TTL). A change also deletes the not-ready key and
/// publishes the event, all in one atomic step. Returns 1 when something changed.
///
/// KEYS[1] ready key, KEYS[2] not-ready key; ARGV[1] value JSON, ARGV[2] TTL ms,
/// ARGV[3] events channel (`{ns}:events:{agent}`), ARGV[4] event JSON.
pub const ASSERT_SCRIPT: &str = include_str!("../../../protocol/assert.lua");

/// The NOT_READY script (`protocol/notready.lua`): deletes the ready key and
/// stores the reason. Publishes the event when the ready key existed or the
/// reason changed. Returns 1 when it published.
///
/// KEYS[1] ready key, KEYS[2] not-ready key; ARGV[1] reason JSON, ARGV[2]
/// reason TTL ms, ARGV[3] events channel (`{ns}:events:{agent}`), ARGV[4] event JSON.
pub const NOT_READY_SCRIPT: &str = include_str!("../../../protocol/notready.lua");

/// The Redis 7 function library muster loads (`FUNCTION LOAD REPLACE`) when
/// it connects: the same two scripts as [`ASSERT_FUNCTION`] and
/// [`NOT_READY_FUNCTION`]. With it, an agent's ACL user needs `FCALL` and no
/// `EVAL`, so it cannot run Lua of its own (a loop in `EVAL` blocks every
/// client of that Redis and nobody else may stop it). Names are versioned
/// (`protocol.json`, `functions`): function names are global in a Redis.
pub const FUNCTION_LIBRARY: &str = concat!(
    "#!lua name=muster_v1\n",
    "redis.register_function('muster_v1_assert', function(KEYS, ARGV)\n",
    include_str!("../../../protocol/assert.lua"),
    "end)\n",
    "redis.register_function('muster_v1_notready', function(KEYS, ARGV)\n",
    include_str!("../../../protocol/notready.lua"),
    "end)\n",
);

/// The library's name in `FUNCTION LIST`.
pub const FUNCTION_LIBRARY_NAME: &str = "muster_v1";
/// `FCALL` name of the ASSERT script.
pub const ASSERT_FUNCTION: &str = "muster_v1_assert";
/// `FCALL` name of the NOT_READY script.
pub const NOT_READY_FUNCTION: &str = "muster_v1_notready";

/// `protocol/protocol.json`: the version, defaults, limits and key templates
/// as data, so every client's constants are tested against one file.
pub const PROTOCOL_JSON: &str = include_str!("../../../protocol/protocol.json");

/// The protocol version this crate speaks (docs/protocol.md, "Versioning").
pub const PROTOCOL_VERSION: u32 = 2;

/// Opens a `redis::Client` for a URL (`redis://[user:pass@]host:port[/db]`,
/// `redis+unix:///path`), without the `CLIENT SETINFO` handshake (the agent
/// ACL user may not run it). The error never repeats the URL: it may hold a password.
pub fn open_client(url: &str) -> Result<redis::Client, SignalError> {
    use redis::IntoConnectionInfo;
    let info = url
        .into_connection_info()
        .map_err(|e| SignalError::InvalidUrl(e.to_string()))?;
    let redis_settings = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(redis_settings);
    redis::Client::open(info).map_err(|e| SignalError::InvalidUrl(e.to_string()))
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This machine's (container's) host name, for the `host` field.
pub fn hostname() -> String {
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.trim().is_empty() {
            return h.trim().to_string();
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("memory-agent_1.v2").is_ok());
        assert!(validate_name(&"a".repeat(128)).is_ok());
        assert!(validate_name(&"a".repeat(129)).is_err());
        assert!(validate_name("").is_err());
        for bad in ["a b", "a:b", "a/b", "é", "a*", "a\n"] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains("agent name"), "{err}");
        }
        assert!(validate_namespace("stack:prod").is_ok());
        assert!(validate_namespace("a b").is_err());
    }

    #[test]
    fn meta_limit() {
        let mut meta = Meta::new();
        meta.insert("k".into(), "x".repeat(4000).into());
        assert!(validate_meta("a", &meta).is_ok());
        meta.insert("k".into(), "x".repeat(4100).into());
        let err = validate_meta("a", &meta).unwrap_err().to_string();
        assert!(err.contains("4096"), "{err}");
    }

    #[test]
    fn keys() {
        assert_eq!(ready_key("muster", "a"), "muster:ready:a");
        assert_eq!(notready_key("ns", "a"), "ns:notready:a");
        assert_eq!(events_channel("ns"), "ns:events");
        assert_eq!(agent_events_channel("ns", "a.b"), "ns:events:a.b");
        assert_eq!(agent_events_pattern("ns:x"), "ns:x:events:*");
        assert_eq!(nats_subject("muster", "a.b"), "muster.ready.a.b");
        assert_eq!(agent_of_ready_key("ns:x", "ns:x:ready:a.b"), Some("a.b"));
        assert_eq!(agent_of_ready_key("ns", "ns:notready:a"), None);
    }

    /// protocol/vectors.json, the bytes every client must write for a given
    /// state (the Python package's tests check the same file): serde_json's
    /// compact form, meta keys sorted, floats in serde_json's notation.
    #[test]
    fn writes_the_test_vectors() {
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../../../protocol/vectors.json")).unwrap();
        assert_eq!(file["function_library"], FUNCTION_LIBRARY);
        let channels = file["events_channels"].as_array().unwrap();
        assert!(!channels.is_empty());
        for c in channels {
            let s = |k: &str| c[k].as_str().unwrap();
            assert_eq!(
                agent_events_channel(s("namespace"), s("agent")),
                s("channel")
            );
        }
        let cases = |kind: &str| file[kind].as_array().unwrap().clone();
        let text = |case: &serde_json::Value, k: &str| case[k].as_str().unwrap().to_string();
        // The bytes this crate writes for the case's state, and how it reads them back.
        let check = |case: &serde_json::Value, value: String, event: Event| {
            let name = text(case, "name");
            assert_eq!(value, text(case, "value"), "{name}");
            assert_eq!(
                serde_json::to_string(&event).unwrap(),
                text(case, "event"),
                "{name}"
            );
            let raw = text(case, "value");
            match event.reason {
                Some(reason) => {
                    // Read back as one plain line (control characters escaped).
                    let read = crate::Readiness::decode(None, Some(raw.as_bytes()));
                    assert_eq!(read.reason(), crate::read::plain_line(&reason), "{name}");
                }
                None => {
                    let read = crate::Readiness::decode(Some(raw.as_bytes()), None);
                    assert_eq!(read.status(), text(&case["state"], "status"), "{name}");
                }
            }
        };
        for case in cases("signal") {
            let value: SignalValue = serde_json::from_value(case["state"].clone()).unwrap();
            let ttl = Duration::from_millis(case["ttl_ms"].as_u64().unwrap());
            let event = Event::from_value(&text(&case, "agent"), &value, ttl);
            check(&case, serde_json::to_string(&value).unwrap(), event);
        }
        for case in cases("not_ready") {
            let value: NotReadyValue = serde_json::from_value(case["state"].clone()).unwrap();
            let event = Event::from_not_ready(&text(&case, "agent"), &value);
            check(&case, serde_json::to_string(&value).unwrap(), event);
        }
    }

    /// The constants above are the ones protocol/protocol.json states, and the
    /// Python client's copies of the protocol files are byte-identical.
    #[test]
    fn matches_the_protocol_files() {
        let spec: serde_json::Value = serde_json::from_str(PROTOCOL_JSON).unwrap();
        assert_eq!(spec["version"], PROTOCOL_VERSION);
        assert_eq!(spec["default_namespace"], DEFAULT_NAMESPACE);
        assert_eq!(spec["default_ttl_ms"], DEFAULT_TTL.as_millis() as u64);
        assert_eq!(
            spec["default_notready_ttl_ms"],
            DEFAULT_NOTREADY_TTL.as_millis() as u64
        );
        assert_eq!(spec["max_name_len"], MAX_NAME_LEN);
        assert_eq!(spec["max_meta_bytes"], MAX_META_BYTES);
        let template = |k: &str| {
            spec["keys"][k]
                .as_str()
                .unwrap()
                .replace("{ns}", "ns")
                .replace("{agent}", "a")
        };
        assert_eq!(template("ready"), ready_key("ns", "a"));
        assert_eq!(template("notready"), notready_key("ns", "a"));
        assert_eq!(template("events"), agent_events_channel("ns", "a"));
        assert_eq!(template("legacy_events"), events_channel("ns"));
        assert_eq!(template("nats_subject"), nats_subject("ns", "a"));
        assert_eq!(spec["functions"]["library"], FUNCTION_LIBRARY_NAME);
        assert_eq!(spec["functions"]["assert"], ASSERT_FUNCTION);
        assert_eq!(spec["functions"]["notready"], NOT_READY_FUNCTION);
        assert!(FUNCTION_LIBRARY.starts_with(&format!("#!lua name={FUNCTION_LIBRARY_NAME}\n")));
        let python = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../clients/python/src/muster_signal/protocol"
        );
        for (file, text) in [
            ("assert.lua", ASSERT_SCRIPT),
            ("notready.lua", NOT_READY_SCRIPT),
            ("protocol.json", PROTOCOL_JSON),
        ] {
            let copy = std::fs::read_to_string(format!("{python}/{file}"))
                .unwrap_or_else(|e| panic!("{python}/{file}: {e}"));
            assert_eq!(
                copy, text,
                "{python}/{file} differs from protocol/{file}: copy it over"
            );
        }
    }
}
