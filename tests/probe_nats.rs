//! NATS probes against real nats-server processes on loopback.

mod common;

use std::time::Duration;

use common::NatsServer;
use muster::probe::spec::ProbeSpec;
use muster::probe::{build, Probe, ProbeContext, ProbeOutcome, ProbeStatus};
use muster::supervisor::runner::run_once;

fn probe(yaml: &str) -> Box<dyn Probe> {
    let spec: ProbeSpec = serde_saphyr::from_str(yaml).expect("probe spec parses");
    build(&spec, &ProbeContext::for_service("nats")).expect("probe builds")
}

async fn check(p: &mut Box<dyn Probe>) -> ProbeOutcome {
    run_once(p.as_mut(), Duration::from_secs(3)).await
}

#[tokio::test]
async fn nats_ok_with_jetstream_and_a_stream() {
    let server = NatsServer::start(true);
    let mut p = probe(&format!(
        "nats: {{ url: \"{}\", jetstream: true }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut p).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(
        outcome.reason.contains("JetStream ok"),
        "{}",
        outcome.reason
    );

    let mut stream = probe(&format!(
        "nats: {{ url: \"{}\", stream: ORDERS }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut stream).await;
    assert_eq!(outcome.status, ProbeStatus::Fail);
    assert!(
        outcome.reason.contains("stream \"ORDERS\" does not exist"),
        "{}",
        outcome.reason
    );
    let client = async_nats::connect(server.url()).await.unwrap();
    let created = client
        .request(
            "$JS.API.STREAM.CREATE.ORDERS",
            r#"{"name":"ORDERS","subjects":["orders.>"]}"#.into(),
        )
        .await
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&created.payload).unwrap();
    assert!(created.get("error").is_none(), "{created}");
    let outcome = check(&mut stream).await;
    assert!(
        outcome.is_ok() && outcome.reason.contains("stream ORDERS exists"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn nats_fails_when_jetstream_is_required_but_off() {
    let server = NatsServer::start(false);
    let mut plain = probe(&format!("nats: {{ url: \"{}\" }}\n", server.url()));
    let outcome = check(&mut plain).await;
    assert!(
        outcome.is_ok() && outcome.reason.contains("flush ok"),
        "{outcome:?}"
    );
    let mut js = probe(&format!(
        "nats: {{ url: \"{}\", jetstream: true }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut js).await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(
        outcome.reason.contains("JetStream is not enabled"),
        "{}",
        outcome.reason
    );
}

#[tokio::test]
async fn nats_recovers_after_a_server_restart() {
    let mut server = NatsServer::start(true);
    let mut p = probe(&format!(
        "nats: {{ url: \"{}\", jetstream: true }}\ntimeout: 1s\n",
        server.url()
    ));
    assert!(check(&mut p).await.is_ok());
    let mut monitor = probe(&format!(
        "nats: {{ monitor_url: \"{}\" }}\ntimeout: 1s\n",
        server.monitor_url()
    ));
    let outcome = check(&mut monitor).await;
    assert!(
        outcome.is_ok() && outcome.reason.contains("healthz ok"),
        "{outcome:?}"
    );
    server.kill();
    let down = check(&mut p).await;
    assert_ne!(down.status, ProbeStatus::Ok, "{down:?}");
    let down = check(&mut p).await;
    assert!(down.reason.contains("refused"), "{}", down.reason);
    let down = check(&mut monitor).await;
    assert!(down.reason.contains("refused"), "{}", down.reason);
    server.restart();
    let mut up = check(&mut p).await;
    for _ in 0..20 {
        if up.is_ok() {
            break;
        }
        // JetStream may need a moment after the port opens.
        tokio::time::sleep(Duration::from_millis(100)).await;
        up = check(&mut p).await;
    }
    assert!(up.is_ok(), "{up:?}");
    let outcome = check(&mut monitor).await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn nats_auth_failures_have_an_auth_reason() {
    let server = NatsServer::start_with(false, &["--auth", "t0ken"]);
    let mut wrong = probe(&format!(
        "nats: {{ url: \"nats://wrong@127.0.0.1:{}\" }}\ntimeout: 2s\n",
        server.port
    ));
    assert!(!wrong.target().contains("wrong"), "{}", wrong.target());
    let outcome = check(&mut wrong).await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(
        outcome.reason.starts_with("auth failed"),
        "{}",
        outcome.reason
    );
    let mut right = probe(&format!(
        "nats: {{ url: \"nats://t0ken@127.0.0.1:{}\" }}\n",
        server.port
    ));
    let outcome = check(&mut right).await;
    assert!(outcome.is_ok(), "{outcome:?}");

    let users = NatsServer::start_with(false, &["--user", "app", "--pass", "pw"]);
    let mut wrong = probe(&format!(
        "nats: {{ url: \"nats://app:nope@127.0.0.1:{}\" }}\ntimeout: 2s\n",
        users.port
    ));
    let outcome = check(&mut wrong).await;
    assert!(
        outcome.reason.starts_with("auth failed"),
        "{}",
        outcome.reason
    );
    let mut right = probe(&format!(
        "nats: {{ url: \"nats://app:pw@127.0.0.1:{}\" }}\n",
        users.port
    ));
    let outcome = check(&mut right).await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn unreachable_nats_gives_a_clear_reason() {
    let mut dns = probe("nats: { url: \"nats://no-such-host.invalid:4222\" }\ntimeout: 1s\n");
    let outcome = check(&mut dns).await;
    assert_ne!(outcome.status, ProbeStatus::Ok);
    assert!(
        outcome.reason.contains("DNS") || outcome.reason.contains("resolve"),
        "{}",
        outcome.reason
    );
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut hang = probe(&format!(
        "nats: {{ url: \"nats://127.0.0.1:{port}\" }}\ntimeout: 500ms\n"
    ));
    let start = std::time::Instant::now();
    let outcome = run_once(hang.as_mut(), Duration::from_millis(500)).await;
    assert_eq!(outcome.status, ProbeStatus::Timeout, "{outcome:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn nats_spec_needs_a_url() {
    let spec: ProbeSpec = serde_saphyr::from_str("nats: { jetstream: true }\n").unwrap();
    let err = build(&spec, &ProbeContext::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nats probe") && err.contains("url"), "{err}");
}
