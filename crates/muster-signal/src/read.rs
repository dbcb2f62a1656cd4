//! Turning what Redis holds (or an event) into a [`Readiness`]. Nothing in
//! here panics on foreign data: a value that is not the protocol's JSON reads
//! as not ready with the reason "corrupt signal".

use std::time::Duration;

use serde::Serialize;

use crate::protocol::{
    notready_key, ready_key, validate_name, validate_namespace, Event, EventStatus, Meta,
    NotReadyValue, SignalValue, Status,
};
use crate::SignalError;

/// Reason given when neither key exists.
pub const NO_SIGNAL: &str = "no ready signal (never sent, expired, or Redis lost it)";
/// Reason given when the ready key expired (seen through keyspace notifications).
pub const EXPIRED: &str = "ready signal expired (no heartbeat within its TTL)";

/// Agent-supplied text (progress, not-ready reason) is cut to this many
/// characters when it is read: it ends up in /status, /readyz?verbose,
/// `muster status` and log lines, and an agent must not be able to make
/// those megabytes long.
pub const MAX_TEXT_CHARS: usize = 512;

/// A ready value, not-ready value or event larger than this is not parsed:
/// it reads as a corrupt signal (ready key) or a not-ready reason saying so.
/// The protocol's own values stay far below it (meta is at most
/// [`crate::protocol::MAX_META_BYTES`]).
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// Agent-supplied text as one plain line: control characters (newlines,
/// terminal escapes), Unicode line separators and bidirectional overrides
/// are written as escapes (`\n`, `\u{1b}`), and the text is cut to
/// [`MAX_TEXT_CHARS`] characters (ending in `…`). What an agent writes can
/// then never forge another line in a log, a table or a verbose report.
pub fn plain_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT_CHARS + 8));
    for (n, c) in text.chars().enumerate() {
        if n == MAX_TEXT_CHARS {
            out.push('…');
            break;
        }
        let invisible = matches!(c, '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
            | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || invisible {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn too_large(what: &str, raw: &[u8]) -> String {
    format!(
        "{what} of {} bytes, over the {MAX_VALUE_BYTES}-byte limit",
        raw.len()
    )
}

/// An agent's readiness as read from Redis or from an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Readiness {
    Ready {
        since_ms: u64,
        #[serde(skip_serializing_if = "Meta::is_empty")]
        meta: Meta,
    },
    Starting {
        since_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        progress: Option<String>,
        /// Unix ms the agent asked the supervisor to wait until.
        #[serde(skip_serializing_if = "Option::is_none")]
        deadline_ms: Option<u64>,
    },
    Stopping {
        since_ms: u64,
    },
    NotReady {
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        since_ms: Option<u64>,
    },
    /// The key holds something that is not the protocol's JSON: not ready.
    Corrupt {
        detail: String,
    },
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready { .. })
    }

    /// `ready`, `starting`, `stopping`, `not_ready` or `corrupt`.
    pub fn status(&self) -> &'static str {
        match self {
            Readiness::Ready { .. } => "ready",
            Readiness::Starting { .. } => "starting",
            Readiness::Stopping { .. } => "stopping",
            Readiness::NotReady { .. } => "not_ready",
            Readiness::Corrupt { .. } => "corrupt",
        }
    }

    /// Why the agent is not ready, for humans ("" when ready).
    pub fn reason(&self) -> String {
        match self {
            Readiness::Ready { .. } => String::new(),
            Readiness::Starting { progress, .. } => match progress {
                Some(p) if !p.is_empty() => format!("starting: {p}"),
                _ => "starting".to_string(),
            },
            Readiness::Stopping { .. } => "stopping (graceful shutdown)".to_string(),
            Readiness::NotReady { reason, .. } => reason.clone(),
            Readiness::Corrupt { detail } => format!("corrupt signal ({detail})"),
        }
    }

    /// The progress text while starting.
    pub fn progress(&self) -> Option<&str> {
        match self {
            Readiness::Starting { progress, .. } => progress.as_deref(),
            _ => None,
        }
    }

    /// The start deadline (unix ms) of a `starting` signal, if any.
    pub fn start_deadline_ms(&self) -> Option<u64> {
        match self {
            Readiness::Starting { deadline_ms, .. } => *deadline_ms,
            _ => None,
        }
    }

    /// Reads an event message (the status it announces).
    pub fn from_event(event: &Event) -> Readiness {
        match event.status {
            EventStatus::Ready => Readiness::Ready {
                since_ms: event.since,
                meta: event.meta.clone(),
            },
            EventStatus::Starting => Readiness::Starting {
                since_ms: event.since,
                progress: event.progress.as_deref().map(plain_line),
                deadline_ms: event.deadline,
            },
            EventStatus::Stopping => Readiness::Stopping {
                since_ms: event.since,
            },
            EventStatus::NotReady => Readiness::NotReady {
                reason: event
                    .reason
                    .as_deref()
                    .map_or_else(|| "not ready".to_string(), plain_line),
                since_ms: Some(event.since),
            },
        }
    }

    /// Reads the raw values of the ready key and the not-ready key.
    pub fn decode(ready: Option<&[u8]>, notready: Option<&[u8]>) -> Readiness {
        if let Some(raw) = ready {
            if raw.len() > MAX_VALUE_BYTES {
                return Readiness::Corrupt {
                    detail: too_large("value", raw),
                };
            }
            return match serde_json::from_slice::<SignalValue>(raw) {
                Ok(v) => match v.status {
                    Status::Ready => Readiness::Ready {
                        since_ms: v.since,
                        meta: v.meta,
                    },
                    Status::Starting => Readiness::Starting {
                        since_ms: v.since,
                        progress: v.progress.as_deref().map(plain_line),
                        deadline_ms: v.deadline,
                    },
                    Status::Stopping => Readiness::Stopping { since_ms: v.since },
                },
                Err(e) => Readiness::Corrupt {
                    detail: corrupt_detail(raw, &e),
                },
            };
        }
        match notready {
            None => Readiness::NotReady {
                reason: NO_SIGNAL.to_string(),
                since_ms: None,
            },
            Some(raw) if raw.len() > MAX_VALUE_BYTES => Readiness::NotReady {
                reason: too_large("not-ready reason", raw),
                since_ms: None,
            },
            Some(raw) => match serde_json::from_slice::<NotReadyValue>(raw) {
                Ok(v) => Readiness::NotReady {
                    reason: plain_line(&v.reason),
                    since_ms: Some(v.since),
                },
                // A plain-text reason (e.g. written with redis-cli) is the reason itself.
                Err(_) => Readiness::NotReady {
                    reason: plain_line(&String::from_utf8_lossy(raw)),
                    since_ms: None,
                },
            },
        }
    }
}

fn corrupt_detail(raw: &[u8], e: &serde_json::Error) -> String {
    if serde_json::from_slice::<serde_json::Value>(raw).is_ok() {
        format!("wrong fields: {e}")
    } else {
        "not JSON".to_string()
    }
}

/// Reads one agent's readiness with one `MGET ready-key notready-key`.
pub async fn read_signal<C>(
    conn: &mut C,
    namespace: &str,
    agent: &str,
) -> Result<Readiness, SignalError>
where
    C: redis::aio::ConnectionLike + Send,
{
    validate_namespace(namespace)?;
    validate_name(agent)?;
    let (ready, notready): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("MGET")
        .arg(ready_key(namespace, agent))
        .arg(notready_key(namespace, agent))
        .query_async(conn)
        .await?;
    Ok(Readiness::decode(ready.as_deref(), notready.as_deref()))
}

/// The blocking form for `muster check`: one connection (no client-name
/// handshake), one `MGET`, no async runtime. `timeout` bounds connect and reply.
pub fn read_signal_blocking(
    url: &str,
    namespace: &str,
    agent: &str,
    timeout: Duration,
) -> Result<Readiness, SignalError> {
    validate_namespace(namespace)?;
    validate_name(agent)?;
    let client = crate::protocol::open_client(url)?;
    let mut conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    let (ready, notready): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("MGET")
        .arg(ready_key(namespace, agent))
        .arg(notready_key(namespace, agent))
        .query(&mut conn)?;
    Ok(Readiness::decode(ready.as_deref(), notready.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_text_is_one_bounded_plain_line() {
        assert_eq!(plain_line("loading 40%"), "loading 40%");
        assert_eq!(
            plain_line("ok\nmuster: service db ready\x1b[2J"),
            "ok\\nmuster: service db ready\\u{1b}[2J"
        );
        assert_eq!(plain_line("a\u{202E}b\u{2028}c"), "a\\u{202e}b\\u{2028}c");
        let long = "x".repeat(MAX_TEXT_CHARS * 10);
        let cut = plain_line(&long);
        assert_eq!(cut.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn oversized_values_are_not_parsed() {
        let progress = "p".repeat(MAX_VALUE_BYTES);
        let raw = format!(r#"{{"status":"starting","since":5,"progress":"{progress}"}}"#);
        match Readiness::decode(Some(raw.as_bytes()), None) {
            Readiness::Corrupt { detail } => assert!(detail.contains("over the"), "{detail}"),
            other => panic!("{other:?}"),
        }
        let r = Readiness::decode(None, Some(raw.as_bytes()));
        assert!(!r.is_ready());
        assert!(
            r.reason().starts_with("not-ready reason of "),
            "{}",
            r.reason()
        );
        // Within the limit, the text is cut and made plain.
        let raw = br#"{"status":"starting","since":5,"progress":"a\nb"}"#;
        assert_eq!(Readiness::decode(Some(raw), None).progress(), Some("a\\nb"));
        let raw = br#"{"reason":"line1\nline2","since":5}"#;
        assert_eq!(Readiness::decode(None, Some(raw)).reason(), "line1\\nline2");
    }

    #[test]
    fn decodes() {
        let r = Readiness::decode(
            Some(br#"{"status":"ready","since":5,"meta":{"m":"x"}}"#),
            None,
        );
        assert!(r.is_ready());
        let r = Readiness::decode(
            Some(br#"{"status":"starting","since":5,"progress":"40%","deadline":99,"extra":1}"#),
            None,
        );
        assert_eq!(r.progress(), Some("40%"));
        assert_eq!(r.start_deadline_ms(), Some(99));
        assert_eq!(r.reason(), "starting: 40%");
        let r = Readiness::decode(None, Some(br#"{"reason":"db down","since":1}"#));
        assert_eq!(r.reason(), "db down");
        let r = Readiness::decode(None, Some(b"plain text"));
        assert_eq!(r.reason(), "plain text");
        let r = Readiness::decode(None, None);
        assert_eq!(r.reason(), NO_SIGNAL);
    }

    #[test]
    fn corrupt_values_are_not_ready() {
        for raw in [
            &b"not json"[..],
            br#"{"status":"bogus","since":1}"#,
            br#"{"since":1}"#,
            br#"{"status":"ready","since":"yesterday"}"#,
            br#"[1,2]"#,
            b"\xff\xfe",
            b"",
        ] {
            let r = Readiness::decode(Some(raw), None);
            assert!(!r.is_ready());
            assert!(r.reason().starts_with("corrupt signal"), "{}", r.reason());
        }
    }
}
