//! Connection handling of the health endpoint: slow clients are cut off by
//! the header read timeout, the connection limit holds, and shutdown is
//! graceful (open event streams are told and closed).

use std::time::{Duration, Instant};

use crate::support::health::{options, request, two_service_store, Server};
use muster::health::ServerOptions;
use muster::supervisor::ServiceState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until EOF (or a reset); returns what arrived. Panics after `limit`.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_dropped_while_others_are_served() {
    let server = Server::start(
        two_service_store(),
        ServerOptions {
            header_read_timeout: Duration::from_millis(800),
            ..options()
        },
    )
    .await;
    server
        .store()
        .transition("redis", ServiceState::Ready, "PONG");
    server
        .store()
        .transition("memory-agent", ServiceState::Ready, "ready");
    let started = Instant::now();
    // One connection sends nothing at all; another trickles header lines and
    // never ends the head.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    trickle
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let trickler = tokio::spawn(async move {
        for i in 0..100 {
            if trickle
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return (trickle, i);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (trickle, 100)
    });

    // Meanwhile the server keeps answering.
    for _ in 0..5 {
        let r = server.get("/readyz").await;
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let got = read_to_close(&mut silent, Duration::from_secs(10)).await;
    let silent_closed = started.elapsed();
    // hyper may answer 408 before closing; it never answers with content.
    let text = String::from_utf8_lossy(&got);
    assert!(got.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        silent_closed >= Duration::from_millis(700),
        "dropped before the timeout: {silent_closed:?}"
    );

    let (mut trickle, lines_sent) = tokio::time::timeout(Duration::from_secs(15), trickler)
        .await
        .expect("the trickling client is cut off")
        .unwrap();
    assert!(
        lines_sent < 100,
        "the server read 100 header lines over 10 s"
    );
    let got = read_to_close(&mut trickle, Duration::from_secs(10)).await;
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"));

    // And still serving.
    assert_eq!(server.get("/readyz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_holds() {
    let server = Server::start(
        two_service_store(),
        ServerOptions {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(60),
            ..options()
        },
    )
    .await;
    let addr = server.addr;
    let idle_a = TcpStream::connect(addr).await.unwrap();
    let idle_b = TcpStream::connect(addr).await.unwrap();
    // Give the accept loop time to take both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = tokio::spawn(async move { request(addr, "GET", "/status/redis", &[], b"").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the limit of 2"
    );
    drop(idle_a);
    let r = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a slot frees up")
        .unwrap();
    assert_eq!(r.status, 200);
    drop(idle_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_graceful() {
    let mut server = Server::start(two_service_store(), options()).await;
    let addr = server.addr;
    let mut events = TcpStream::connect(addr).await.unwrap();
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = events.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    server.shutdown().await.expect("serve returns Ok");
    let rest = read_to_close(&mut events, Duration::from_secs(10)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("event: shutdown"), "{rest:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

/// The header read timeout is for request heads only: an `/events` stream
/// that outlives it many times over stays open and keeps delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_outlive_the_header_timeout() {
    let server = Server::start(
        two_service_store(),
        ServerOptions {
            header_read_timeout: Duration::from_millis(200),
            sse_keepalive: Duration::from_millis(100),
            ..options()
        },
    )
    .await;
    let mut events = TcpStream::connect(server.addr).await.unwrap();
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while started.elapsed() < Duration::from_millis(1500) {
        let n = tokio::time::timeout(Duration::from_secs(5), events.read(&mut buf))
            .await
            .expect("keep-alives keep coming")
            .unwrap();
        assert!(
            n > 0,
            "stream closed after {:?}: {seen:?}",
            started.elapsed()
        );
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.matches(": keep-alive").count() >= 5, "{seen:?}");
    server
        .store()
        .transition("redis", ServiceState::Ready, "late change");
    while !seen.contains("late change") {
        let n = tokio::time::timeout(Duration::from_secs(5), events.read(&mut buf))
            .await
            .expect("the late change arrives")
            .unwrap();
        assert!(n > 0, "stream closed: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}
