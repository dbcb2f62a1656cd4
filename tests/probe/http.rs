//! The http probe's kept-alive connection against a real HTTP/1.1 server on
//! loopback: one connection serves many runs, and a connection the server
//! dropped between runs is replaced without a failed run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use muster::compose::xmuster::ProbeSpec;
use muster::probe::{build, Probe, ProbeContext, ProbeStatus};
use muster::supervisor::once::run_once;
use tokio::task::JoinHandle;

/// A keep-alive hyper server answering `{"status":"ok"}`; counts the
/// connections it accepted; dropping it closes the listener and every
/// connection.
struct Server {
    accepted: Arc<AtomicUsize>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl Server {
    async fn start(port: u16) -> Server {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let accepted = accepted.clone();
            let tasks = tasks.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let task = tokio::spawn(async move {
                        let service = hyper::service::service_fn(|_req| async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"{\"status\":\"ok\"}"),
                            )))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                    tasks.lock().unwrap().push(task);
                }
            })
        };
        Server {
            accepted,
            tasks,
            acceptor,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.acceptor.abort();
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn probe(port: u16) -> Box<dyn Probe> {
    let spec: ProbeSpec = serde_saphyr::from_str(&format!(
        "http: {{ url: \"http://127.0.0.1:{port}/health\", json: {{ pointer: /status, equals: ok }} }}\ntimeout: 2s\n"
    ))
    .unwrap();
    build(&spec, &ProbeContext::default()).unwrap()
}

#[tokio::test]
async fn one_connection_serves_many_runs_and_a_dropped_one_is_replaced() {
    let port = free_port();
    let server = Server::start(port).await;
    let mut p = probe(port);
    for _ in 0..20 {
        let outcome = run_once(p.as_mut(), Duration::from_secs(2)).await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(outcome.reason, "HTTP 200");
    }
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        1,
        "20 runs should share one kept-alive connection"
    );

    // The server goes away between runs (closing the kept connection) and
    // comes back on the same port: the next run reconnects and passes.
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let server = Server::start(port).await;
    let outcome = run_once(p.as_mut(), Duration::from_secs(2)).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    let outcome = run_once(p.as_mut(), Duration::from_secs(2)).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);

    // No server at all: a failure that says why, not a hang.
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let outcome = run_once(p.as_mut(), Duration::from_secs(2)).await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(outcome.reason.contains("refused"), "{}", outcome.reason);
}
