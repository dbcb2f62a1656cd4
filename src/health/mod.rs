//! The health HTTP endpoint: `/healthz`, `/livez`, `/readyz`, `/status`,
//! `/metrics`, `/events` and a small status page at `/`.
//!
//! Every answer is computed from state the supervisor already holds in
//! [`StateStore`]: a request never runs a probe. The server is hyper 1.x
//! (HTTP/1.1 with keep-alive) with a concurrent-connection limit, a header
//! read timeout against slow clients, bounded request bodies and graceful
//! shutdown.
//!
//! ```no_run
//! # async fn demo() -> Result<(), muster::health::HealthError> {
//! use muster::health::{self, ServerOptions};
//! use muster::supervisor::Writer;
//!
//! // The store's one writer stays with whoever writes it (the probe runner);
//! // the endpoint gets a reader.
//! let writer = Writer::new("demo");
//! let options = ServerOptions::default();
//! let listener = health::bind(options.listen).await?;
//! health::serve(listener, writer.store(), options, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! Liveness (`/healthz`, `/livez`) follows the store's heartbeat counter
//! ([`StateStore::beat`]): ok while it moved within
//! [`ServerOptions::liveness_window`]. Before the first beat the server
//! grants one window from its own start (the supervisor may still be loading
//! the stack); after that a silent supervisor makes liveness fail, so an
//! orchestrator restarts muster. `liveness_window: None` turns the check off.

pub mod client;
mod events;
pub mod identity;
mod metrics;
mod page;
mod readyz;
mod routes;
mod server;
mod status;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub use identity::Identity;
pub use readyz::{liveness_report, readiness_report, CheckReport, Liveness};
pub use server::serve;
pub use status::StatusView;

/// How the health server behaves. [`ServerOptions::listening_on`] fills
/// `listen` from the resolved settings; the rest keep their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    /// Where to listen (default `127.0.0.1:8686`; `0.0.0.0:8686` inside a container).
    pub listen: SocketAddr,
    /// `/healthz` fails when the supervisor's heartbeat did not move for this
    /// long (default 10 s). `None`: liveness is always ok.
    pub liveness_window: Option<Duration>,
    /// A connection must deliver a complete request head within this time
    /// (also the idle limit of a keep-alive connection between requests).
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Request bodies are read and dropped up to this size; larger ones get 413.
    pub max_body_bytes: usize,
    /// A `: keep-alive` comment is sent on `/events` this often.
    pub sse_keepalive: Duration,
    /// On shutdown, open connections get this long to finish.
    pub shutdown_drain: Duration,
    /// The stack this muster supervises: sent as `X-Muster-*` headers on
    /// every answer and as `muster` in `/status` (see [`identity`]).
    pub identity: Option<Identity>,
}

pub const DEFAULT_LIVENESS_WINDOW: Duration = Duration::from_secs(10);
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_SSE_KEEPALIVE: Duration = Duration::from_secs(15);
pub const DEFAULT_SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8686)),
            liveness_window: Some(DEFAULT_LIVENESS_WINDOW),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            sse_keepalive: DEFAULT_SSE_KEEPALIVE,
            shutdown_drain: DEFAULT_SHUTDOWN_DRAIN,
            identity: None,
        }
    }
}

impl ServerOptions {
    /// The defaults, listening on `listen` as set (`--listen` /
    /// `MUSTER_LISTEN` / `listen:` in the config file).
    pub fn listening_on(listen: &str) -> Result<ServerOptions, HealthError> {
        Ok(ServerOptions {
            listen: parse_listen(listen)?,
            ..ServerOptions::default()
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("invalid listen address {input:?} (setting `listen`, flag --listen, env MUSTER_LISTEN): {reason}; expected HOST:PORT such as 127.0.0.1:8686, 0.0.0.0:8686, [::]:8686 or :8686")]
    InvalidListen { input: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Parses a listen address: `IP:PORT`, `[IPv6]:PORT`, `:PORT` (all IPv4
/// interfaces, as Go servers read it) or `localhost:PORT`.
pub fn parse_listen(input: &str) -> Result<SocketAddr, HealthError> {
    let err = |reason: &str| HealthError::InvalidListen {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(err("empty"));
    }
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| err("port is not a number 0-65535"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(err("missing :PORT"));
    };
    if host.is_empty() {
        return Err(err("missing host"));
    }
    port.parse::<u16>()
        .map_err(|_| err("port is not a number 0-65535"))?;
    if host.contains(':') && !host.starts_with('[') {
        return Err(err("an IPv6 address needs brackets, as in [::1]:8686"));
    }
    // A host name (localhost, or a compose service name) resolves once, at start-up.
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| err(&format!("cannot resolve host {host:?}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| err(&format!("host {host:?} resolves to no address")))
}

/// Completes on SIGTERM or SIGINT (Ctrl-C): the shutdown future for
/// [`serve`] in `muster serve` / `muster up --serve`.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server")
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Binds the listener, with an error that names the address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, HealthError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HealthError::Bind { addr, source })
}

/// Binds the first of `addrs` that is free: the derived ports of a stack
/// ([`identity::derived_addresses`]), where one taken by another process
/// moves muster on to the next. Other errors stop at once.
pub async fn bind_first(addrs: &[SocketAddr]) -> Result<tokio::net::TcpListener, HealthError> {
    let mut last = None;
    for addr in addrs {
        match bind(*addr).await {
            Ok(listener) => return Ok(listener),
            Err(HealthError::Bind { addr, source })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                tracing::info!(%addr, "derived port in use; trying the next");
                last = Some(HealthError::Bind { addr, source });
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(HealthError::InvalidListen {
        input: String::new(),
        reason: "no address to bind".into(),
    }))
}

/// The response body of every route, the SSE stream's included: one boxed
/// type, defined here so that `routes.rs` and `events.rs` both use their
/// parent instead of each other.
pub(crate) type Body =
    http_body_util::combinators::UnsyncBoxBody<hyper::body::Bytes, std::convert::Infallible>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:8686").unwrap(),
            "127.0.0.1:8686".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:9000").unwrap(),
            "0.0.0.0:9000".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::]:8686").unwrap(),
            "[::]:8686".parse().unwrap()
        );
        assert_eq!(
            parse_listen(":8686").unwrap(),
            "0.0.0.0:8686".parse().unwrap()
        );
        assert!(parse_listen("localhost:8686").unwrap().ip().is_loopback());
        for bad in [
            "",
            "8686",
            "127.0.0.1",
            "127.0.0.1:http",
            "127.0.0.1:70000",
            ":x",
            "::1:8686",
        ] {
            let e = parse_listen(bad).unwrap_err().to_string();
            assert!(e.contains("invalid listen address"), "{bad}: {e}");
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
