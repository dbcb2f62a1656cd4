//! The state of one connection muster keeps (the engine's event stream, the
//! coordination Redis and NATS of the agent watcher, the history store's
//! Redis, webhook delivery), reported by the part that owns the connection
//! and read by everyone else.
//!
//! Why: a link that is down changes what muster's verdicts mean (agents are
//! held at their last state while Redis is away, exits are not seen while
//! the engine is), so `/status`, `/metrics` and `muster status` must say so,
//! and only the owner of a connection knows. The owner holds a
//! [`LinkReporter`] and says [`LinkReporter::connected`] or
//! [`LinkReporter::failed`]; readers follow a `tokio::sync::watch` receiver,
//! so the owner never waits for them. A leaf: it imports nothing of muster,
//! so the engine, the signal watcher, the history store and the notifier
//! (which sit on different layers) can all report through it.
//!
//! Error text is the owner's, already free of credentials (each owner
//! redacts its URLs); this module only bounds its length.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Not connected yet (or, for a webhook, nothing delivered yet).
    Connecting,
    Connected,
    /// It was lost (or never came up) and its owner keeps trying.
    Reconnecting,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Reconnecting => "reconnecting",
        }
    }
}

/// One link as `/status` shows it (`links.<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub state: LinkState,
    /// Unix ms when it entered `state`.
    pub since_ms: u64,
    /// Why the last attempt failed (kept after a reconnect, until the next failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed attempts since it was last connected.
    pub attempts: u32,
    /// Times it was connected again after it was lost.
    pub reconnects: u64,
}

/// What a link is for, as `muster status` and the status page group them:
/// the agent watcher's `redis` and `nats` and the `history` store are the
/// coordination link; `engine` and `webhook` are their own.
pub fn group(name: &str) -> &str {
    match name {
        "redis" | "nats" | "history" => "coordination",
        other => other,
    }
}

impl LinkStatus {
    /// Worth a line in `muster status`: lost, or never up after a failed try.
    pub fn is_down(&self) -> bool {
        self.state == LinkState::Reconnecting
            || (self.state == LinkState::Connecting && self.attempts > 0)
    }
}

/// Longest `last_error` kept (characters).
const MAX_ERROR: usize = 300;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl LinkStatus {
    fn new() -> LinkStatus {
        LinkStatus {
            state: LinkState::Connecting,
            since_ms: now_ms(),
            last_error: None,
            attempts: 0,
            reconnects: 0,
        }
    }

    /// An attempt failed (or the link dropped), as of `at_ms`.
    pub fn fail(&mut self, at_ms: u64, error: &str) {
        if self.state != LinkState::Reconnecting {
            // `since` is when it was lost, not the last failed attempt.
            self.state = LinkState::Reconnecting;
            self.since_ms = at_ms;
        }
        self.attempts = self.attempts.saturating_add(1);
        let one_line: String = error
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_ERROR)
            .collect();
        self.last_error = Some(one_line);
    }
}

/// The owner's side: cheap to clone; every clone reports the same link.
#[derive(Debug, Clone)]
pub struct LinkReporter {
    tx: Arc<watch::Sender<(LinkStatus, bool)>>,
}

impl Default for LinkReporter {
    fn default() -> Self {
        LinkReporter::new()
    }
}

impl LinkReporter {
    /// A link that is `connecting`.
    pub fn new() -> LinkReporter {
        let (tx, _) = watch::channel((LinkStatus::new(), false));
        LinkReporter { tx: Arc::new(tx) }
    }

    /// The link works (a no-op while it already does).
    pub fn connected(&self) {
        self.tx.send_if_modified(|(status, ever)| {
            if status.state == LinkState::Connected {
                return false;
            }
            let again = *ever;
            *ever = true;
            if again {
                status.reconnects += 1;
            }
            status.state = LinkState::Connected;
            status.since_ms = now_ms();
            status.attempts = 0;
            true
        });
    }

    /// An attempt failed or the link dropped; `error` says why (no secrets).
    pub fn failed(&self, error: &str) {
        self.tx
            .send_modify(|(status, _)| status.fail(now_ms(), error));
    }

    /// The link as of now.
    pub fn status(&self) -> LinkStatus {
        self.tx.borrow().0.clone()
    }

    /// Follows the link's changes.
    pub fn subscribe(&self) -> LinkWatch {
        LinkWatch {
            rx: self.tx.subscribe(),
        }
    }
}

/// The readers' side of one link.
#[derive(Debug, Clone)]
pub struct LinkWatch {
    rx: watch::Receiver<(LinkStatus, bool)>,
}

impl LinkWatch {
    /// The link as of now (marks it seen).
    pub fn current(&mut self) -> LinkStatus {
        self.rx.borrow_and_update().0.clone()
    }

    /// Waits for the next change; `false` once the owner is gone.
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_the_loss_and_reconnects_count_only_after_a_first_connect() {
        let link = LinkReporter::new();
        let mut rx = link.subscribe();
        assert_eq!(rx.current().state, LinkState::Connecting);
        link.failed("refused");
        link.connected();
        assert_eq!(
            link.status().reconnects,
            0,
            "a first connect is no reconnect"
        );
        link.failed("connection reset\nby peer");
        let lost = link.status();
        link.failed("refused");
        let s = link.status();
        assert_eq!(s.state, LinkState::Reconnecting);
        assert_eq!(s.since_ms, lost.since_ms);
        assert_eq!(s.attempts, 2);
        assert_eq!(lost.last_error.as_deref(), Some("connection reset by peer"));
        link.connected();
        let s = rx.current();
        assert_eq!(
            (s.state, s.attempts, s.reconnects),
            (LinkState::Connected, 0, 1)
        );
        assert_eq!(s.last_error.as_deref(), Some("refused"));
    }
}
