//! Ready signals for agents supervised by muster.
//!
//! An agent tells muster (and `muster check`, which its compose healthcheck
//! runs) that it is starting, ready, not ready or stopping, by writing one
//! Redis key with a TTL and publishing the change, atomically. This crate
//! depends on redis, tokio and serde only, so an agent links nothing heavy.
//!
//! ```no_run
//! # async fn demo() -> Result<(), muster_signal::SignalError> {
//! use muster_signal::Client;
//! let client = Client::connect("redis://127.0.0.1:6379").await?;
//! let mut guard = client.shutdown_guard()?; // SIGTERM/SIGINT -> stopping
//! client.mark_starting("memory-agent", "loading model 40%", Some(std::time::Duration::from_secs(300))).await?;
//! client.mark_ready("memory-agent", &[("model", "small")]).await?;
//! guard.signalled().await;                   // heartbeats run until then
//! guard.finish("stopped").await?;            // not ready, reason "stopped"
//! # Ok(()) }
//! ```
//!
//! The protocol (key names, JSON values, events, exact Redis commands) is in
//! [`protocol`], docs/protocol.md (the specification) and docs/readme/signal.md.

pub mod client;
pub mod protocol;
pub mod read;

pub use client::{Client, ClientOptions, ShutdownGuard};
pub use protocol::{
    agent_events_channel, agent_events_pattern, events_channel, nats_subject, notready_key,
    ready_key, validate_meta, validate_name, validate_namespace, Event, EventStatus, Meta,
    NotReadyValue, SignalValue, Status, ASSERT_FUNCTION, DEFAULT_NAMESPACE, DEFAULT_NOTREADY_TTL,
    DEFAULT_TTL, FUNCTION_LIBRARY, FUNCTION_LIBRARY_NAME, MAX_META_BYTES, MAX_NAME_LEN,
    NOT_READY_FUNCTION, PROTOCOL_VERSION,
};
pub use read::{read_signal, read_signal_blocking, Readiness};

/// Everything that can go wrong sending or reading a signal.
#[derive(Debug)]
pub enum SignalError {
    /// The agent name breaks `[A-Za-z0-9._-]{1,128}`.
    InvalidName {
        name: String,
        reason: String,
    },
    InvalidNamespace(String),
    /// `meta` serializes to more than 4 KiB.
    MetaTooLarge {
        agent: String,
        bytes: usize,
    },
    /// A Redis URL that does not parse (the URL is not repeated: it may hold a password).
    InvalidUrl(String),
    Redis(redis::RedisError),
    /// muster's functions are not loaded (or Redis has none) and this user
    /// may not `EVAL` the scripts either.
    NoFunctions {
        fcall: redis::RedisError,
        eval: redis::RedisError,
    },
    Io(std::io::Error),
}

impl std::fmt::Display for SignalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignalError::InvalidName { name, reason } => {
                write!(f, "invalid agent name {name:?}: {reason}")
            }
            SignalError::InvalidNamespace(ns) => write!(
                f,
                "invalid namespace {ns:?}: use 1-{MAX_NAME_LEN} of A-Z a-z 0-9 . _ - :"
            ),
            SignalError::MetaTooLarge { agent, bytes } => write!(
                f,
                "meta for agent {agent:?} is {bytes} bytes as JSON, at most {MAX_META_BYTES} allowed"
            ),
            SignalError::InvalidUrl(why) => write!(f, "invalid Redis URL: {why}"),
            SignalError::Redis(e) => write!(f, "redis: {e}"),
            SignalError::NoFunctions { fcall, .. } => write!(
                f,
                "muster's Redis functions ({}) are not loaded and this user may not EVAL the \
                 scripts: start muster against this Redis first (it loads them when it \
                 connects), load protocol's library with FUNCTION LOAD, or grant +eval \
                 (FCALL said: {fcall})",
                protocol::FUNCTION_LIBRARY_NAME
            ),
            SignalError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SignalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignalError::Redis(e) => Some(e),
            SignalError::NoFunctions { eval, .. } => Some(eval),
            SignalError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for SignalError {
    fn from(e: redis::RedisError) -> Self {
        SignalError::Redis(e)
    }
}

impl From<std::io::Error> for SignalError {
    fn from(e: std::io::Error) -> Self {
        SignalError::Io(e)
    }
}
