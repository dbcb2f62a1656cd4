//! `GET /events` carries a pulling service's numbers: `event: pull` frames
//! (image, services, bytes done / total, layers) at most one a second per
//! image, and a last one with `"done": true`, while `up` pulls from a real
//! registry.

use std::time::{Duration, Instant};

use muster::supervisor::start::UpOutcome;
use muster::supervisor::PullPulse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::health::{options, Server};
use crate::PullingStack;

/// The `data:` of every `event: pull` frame in `text`.
fn pulses(text: &str) -> Vec<PullPulse> {
    text.split("event: pull\ndata: ")
        .skip(1)
        .filter_map(|rest| rest.split('\n').next())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_the_pull_numbers() {
    let stack = PullingStack::new("pullsse", 48 << 20, 3, Vec::new()).await;
    let (image, store) = (&stack.image, &stack.store);
    let server = Server::start(store.clone(), options()).await;

    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .expect("request");
    let began = Instant::now();
    let task = stack.spawn_up();
    let mut seen = String::new();
    let mut buf = vec![0u8; 16 << 10];
    while !pulses(&seen).iter().any(|p| p.done) {
        let n = tokio::time::timeout(Duration::from_secs(120), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no final pull event within 120 s: {seen}"))
            .expect("read");
        assert!(n > 0, "the stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let elapsed = began.elapsed();
    let report = task.await.expect("join").expect("up");
    assert_eq!(report.outcome, UpOutcome::Ready);

    let all = pulses(&seen);
    for pulse in &all {
        assert_eq!(&pulse.progress.image, image, "{seen}");
        assert_eq!(pulse.services, vec!["agent".to_string()], "{seen}");
    }
    let running = all.iter().filter(|p| !p.done).count();
    assert!(running >= 1, "no progress before the end: {seen}");
    assert!(
        running as u64 <= elapsed.as_secs() + 1,
        "{running} pull events in {elapsed:?}: at most one a second"
    );
    let last = all.last().expect("a last pulse");
    assert!(last.done, "{seen}");
    assert!(last.progress.bytes_total >= 48 << 20, "{last:?}");
    assert_eq!(
        last.progress.bytes_done, last.progress.bytes_total,
        "{last:?}"
    );
    // The three random layers plus the base image's.
    assert!(last.progress.layers_total >= 3, "{last:?}");
    assert_eq!(
        last.progress.layers_done, last.progress.layers_total,
        "{last:?}"
    );
}
