//! Redis probes against real redis-server processes on loopback.

use crate::support::{self, RedisServer};
use std::time::{Duration, Instant};

use muster::compose::xmuster::ProbeSpec;
use muster::probe::{build, Probe, ProbeContext, ProbeStatus};
use muster::supervisor::once::run_once;

fn probe(yaml: &str) -> Box<dyn Probe> {
    let spec: ProbeSpec = serde_saphyr::from_str(yaml).expect("probe spec parses");
    build(&spec, &ProbeContext::for_service("redis")).expect("probe builds")
}

async fn check(p: &mut Box<dyn Probe>) -> muster::probe::ProbeOutcome {
    run_once(p.as_mut(), Duration::from_secs(2)).await
}

#[tokio::test]
async fn redis_ok_when_up_and_reuses_its_connection() {
    let server = RedisServer::start();
    let mut p = probe(&format!(
        "redis: {{ url: \"{}\" }}\ntimeout: 1s\n",
        server.url()
    ));
    assert_eq!(p.kind(), "redis");
    let first = check(&mut p).await;
    assert_eq!(first.status, ProbeStatus::Ok, "{first:?}");
    assert!(
        first.reason.contains("PONG") && first.reason.contains("not loading"),
        "{}",
        first.reason
    );
    // The second run reuses the connection: the server sees one client.
    let second = check(&mut p).await;
    assert!(second.is_ok(), "{second:?}");
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(list.lines().count(), 2, "probe + this client only: {list}");
}

#[tokio::test]
async fn redis_fails_with_loading_while_a_big_rdb_loads() {
    // key-load-delay slows loading of a real RDB down (500 µs per key) so the
    // probe sees Redis in the loading state for ~15 s.
    let mut server = RedisServer::start_with(&[
        "--enable-debug-command",
        "yes",
        "--key-load-delay",
        "500",
        "--loading-process-events-interval-bytes",
        "1024",
    ]);
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(30_000)
        .arg("k")
        .arg(100)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SAVE").query_async(&mut conn).await.unwrap();
    drop(conn);
    let mut p = probe(&format!(
        "redis: {{ url: \"{}\", require: [ping, not_loading] }}\n",
        server.url()
    ));
    assert!(check(&mut p).await.is_ok());
    server.restart();
    let outcome = check(&mut p).await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(outcome.reason.starts_with("loading"), "{}", outcome.reason);
    assert!(
        outcome.reason.contains("% loaded"),
        "progress from INFO: {}",
        outcome.reason
    );
    // Still loading a moment later; the reason stays "loading", never a hang.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = check(&mut p).await;
    assert!(again.reason.starts_with("loading"), "{}", again.reason);
}

#[tokio::test]
async fn redis_wrong_password_gives_an_auth_reason() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:wrong@127.0.0.1:{}", server.port);
    let mut p = probe(&format!("redis: {{ url: \"{url}\" }}\n"));
    assert!(
        !p.target().contains("wrong"),
        "password redacted: {}",
        p.target()
    );
    let outcome = check(&mut p).await;
    assert_eq!(outcome.status, ProbeStatus::Fail);
    assert!(
        outcome.reason.starts_with("auth failed"),
        "{}",
        outcome.reason
    );
    assert!(
        !outcome.reason.contains("wrong"),
        "no password in the reason: {}",
        outcome.reason
    );
    // No password at all: also an auth reason.
    let mut none = probe(&format!("redis: {{ url: \"{}\" }}\n", server.url()));
    let outcome = check(&mut none).await;
    assert!(
        outcome.reason.starts_with("auth failed"),
        "{}",
        outcome.reason
    );
    // The right one, with an ACL user and a db number.
    let mut ok = probe(&format!(
        "redis: {{ url: \"redis://default:s3cret@127.0.0.1:{}/3\" }}\n",
        server.port
    ));
    let outcome = check(&mut ok).await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn redis_recovers_after_a_server_restart() {
    let mut server = RedisServer::start();
    let mut p = probe(&format!("redis: {{ url: \"{}\" }}\n", server.url()));
    assert!(check(&mut p).await.is_ok());
    server.kill();
    let down = check(&mut p).await;
    assert_eq!(down.status, ProbeStatus::Fail, "{down:?}");
    let down = check(&mut p).await;
    assert!(down.reason.contains("refused"), "{}", down.reason);
    server.restart();
    let up = check(&mut p).await;
    assert!(up.is_ok(), "a dead connection is re-made: {up:?}");
}

#[tokio::test]
async fn redis_role_and_key_checks() {
    let server = RedisServer::start();
    let mut replica = probe(&format!(
        "redis: {{ url: \"{}\", role: replica }}\n",
        server.url()
    ));
    let outcome = check(&mut replica).await;
    assert!(
        outcome.reason.contains("role is master, want replica"),
        "{}",
        outcome.reason
    );
    let mut key = probe(&format!(
        "redis: {{ url: \"{}\", role: master, key_exists: \"boot:done\" }}\n",
        server.url()
    ));
    let outcome = check(&mut key).await;
    assert!(
        outcome.reason.contains("\"boot:done\" does not exist"),
        "{}",
        outcome.reason
    );
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("boot:done")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let outcome = check(&mut key).await;
    assert!(
        outcome.is_ok() && outcome.reason.contains("role master"),
        "{outcome:?}"
    );
    // A replica whose master is not reachable: the link is down.
    let replica_server = RedisServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &support::free_port().to_string(),
    ]);
    let mut link = probe(&format!(
        "redis: {{ url: \"{}\", role: replica, replication_link_up: true }}\n",
        replica_server.url()
    ));
    let outcome = check(&mut link).await;
    assert!(
        outcome
            .reason
            .contains("replication link to master is down"),
        "{}",
        outcome.reason
    );
}

#[tokio::test]
async fn unreachable_redis_gives_a_clear_reason_within_the_timeout() {
    // DNS failure.
    let mut dns = probe("redis: { url: \"redis://no-such-host.invalid:6379\" }\ntimeout: 1s\n");
    let outcome = check(&mut dns).await;
    assert!(outcome.reason.starts_with("DNS"), "{}", outcome.reason);
    // Nothing listening.
    let port = support::free_port();
    let mut refused = probe(&format!(
        "redis: {{ url: \"redis://127.0.0.1:{port}\" }}\ntimeout: 1s\n"
    ));
    let outcome = check(&mut refused).await;
    assert!(outcome.reason.contains("refused"), "{}", outcome.reason);
    // A server that accepts but never answers: a timeout, not a hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut hang = probe(&format!(
        "redis: {{ url: \"redis://127.0.0.1:{port}\" }}\ntimeout: 500ms\n"
    ));
    let start = Instant::now();
    let outcome = run_once(hang.as_mut(), Duration::from_millis(500)).await;
    assert_eq!(outcome.status, ProbeStatus::Timeout, "{outcome:?}");
    assert!(outcome.reason.contains("timed out"), "{}", outcome.reason);
    // Ended by its timeout, not hung on the silent server.
    assert!(
        start.elapsed() < support::HANG_GUARD,
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn bad_probe_fields_are_refused_with_the_field_name() {
    let spec: ProbeSpec =
        serde_saphyr::from_str("redis: { url: \"redis://r:6379\", require: [pong] }\n").unwrap();
    let err = build(&spec, &ProbeContext::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("redis probe") && err.contains("require"),
        "{err}"
    );
    let unknown =
        serde_saphyr::from_str::<ProbeSpec>("redis: { url: \"redis://r\", rol: master }\n");
    assert!(unknown.unwrap_err().to_string().contains("rol"));
    let agent: ProbeSpec = serde_saphyr::from_str("agent: { name: memory-agent }\n").unwrap();
    let err = build(&agent, &ProbeContext::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("agent probes are wired by the supervisor"),
        "{err}"
    );
}
