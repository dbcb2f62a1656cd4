//! The accept loop: a connection limit (a semaphore permit per connection,
//! taken before `accept`, so excess clients wait in the listen backlog), a
//! header read timeout against slowloris clients, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::metrics::Metrics;
use super::readyz::Liveness;
use super::routes::{handle, App};
use super::status::StatusCache;
use super::{HealthError, ServerOptions};
use crate::supervisor::StateStore;

/// Aborts the server's helper tasks when `serve` returns (or is dropped).
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Serves the health endpoint on `listener` until `shutdown` completes, then
/// stops accepting, asks open connections to finish (an `/events` stream
/// ends with `event: shutdown`), waits up to
/// [`ServerOptions::shutdown_drain`] for them and returns.
///
/// Accept errors (such as running out of file descriptors) are logged and
/// retried; they never end the server.
pub async fn serve(
    listener: TcpListener,
    store: StateStore,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HealthError> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let max_connections = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let app = Arc::new(App {
        liveness: Liveness::new(options.liveness_window),
        metrics: Metrics::new(store.clone()),
        status: StatusCache::default(),
        store: store.clone(),
        options: options.clone(),
        shutdown: shutdown_rx.clone(),
    });
    let beats = {
        let app = app.clone();
        let rx = store.heartbeats();
        tokio::spawn(async move { app.liveness.follow(rx).await })
    };
    let probes = {
        let app = app.clone();
        let rx = store.probe_runs();
        tokio::spawn(async move { app.metrics.follow(rx).await })
    };
    let _helpers = AbortOnDrop(vec![beats, probes]);

    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "health endpoint listening");
    }
    let limit = Arc::new(Semaphore::new(max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true)
        // Bounds the request head a client may send (hyper's minimum is 8 KiB).
        .max_buf_size(16 * 1024)
        .max_headers(64);

    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "health endpoint: accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let mut stop = shutdown_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(app, req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = super::events::shutting_down(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                // Header timeouts, resets and malformed requests land here.
                tracing::debug!(%peer, error = %e, "health connection closed with an error");
            }
        });
    }

    drop(listener);
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(options.shutdown_drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
        tracing::warn!(
            drain = %crate::duration::format(options.shutdown_drain),
            "health endpoint: connections still open after the drain period; closing them"
        );
    }
    tracing::info!("health endpoint stopped");
    Ok(())
}
