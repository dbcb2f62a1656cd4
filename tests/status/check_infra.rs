//! `muster check --redis URL` / `--nats URL` end to end: the built binary
//! against real redis-server and nats-server processes.

use std::process::Output;
use std::time::Instant;

use crate::support::{free_port, text, Muster, NatsServer, RedisServer, HANG_GUARD};

fn muster(args: &[&str]) -> Output {
    Muster::new().run(args)
}

#[test]
fn check_redis_ok() {
    let redis = RedisServer::start();
    let out = muster(&["check", "--redis", &redis.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = muster(&["check", "--redis", &redis.url(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let outcome: muster::probe::ProbeOutcome =
        serde_json::from_slice(&out.stdout).expect("--json prints a ProbeOutcome");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(outcome.reason.contains("PONG"), "{outcome:?}");
}

#[test]
fn check_redis_wrong_password_is_not_ready_and_hides_the_password() {
    let redis = RedisServer::start_with(&["--requirepass", "right-pw"]);
    let url = format!("redis://:wrong-pw@127.0.0.1:{}", redis.port);
    for json in [false, true] {
        let mut args = vec!["check", "--redis", url.as_str()];
        if json {
            args.push("--json");
        }
        let out = muster(&args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.to_lowercase().contains("auth"), "{err}");
        assert!(!all.contains("wrong-pw"), "password printed: {all}");
        assert!(!all.contains("right-pw"), "password printed: {all}");
        if json {
            let outcome: muster::probe::ProbeOutcome =
                serde_json::from_slice(&out.stdout).expect("--json prints a ProbeOutcome");
            assert!(!outcome.is_ok());
            assert!(
                outcome.reason.to_lowercase().contains("auth"),
                "{outcome:?}"
            );
        }
    }
    // The right password passes.
    let url = format!("redis://:right-pw@127.0.0.1:{}", redis.port);
    let out = muster(&["check", "--redis", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("right-pw"));
}

#[test]
fn check_redis_dead_port_fails_within_the_timeout() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let start = Instant::now();
    let out = muster(&["check", "--redis", &url, "--timeout", "1s"]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(took < HANG_GUARD, "took {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn check_redis_silent_server_times_out() {
    // A loopback listener that accepts but never answers: the check must end
    // at --timeout, never hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let start = Instant::now();
    let out = muster(&[
        "check",
        "--redis",
        &format!("redis://127.0.0.1:{port}"),
        "--timeout",
        "500ms",
    ]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Ended by --timeout (it says so), not hung on the silent server.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out"), "{err}");
    assert!(took < HANG_GUARD, "took {took:?}");
    drop(silent);
}

#[test]
fn check_nats_ok_and_dead() {
    let mut nats = NatsServer::start(false);
    let out = muster(&["check", "--nats", &nats.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = muster(&["check", "--nats", &nats.url(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let outcome: muster::probe::ProbeOutcome =
        serde_json::from_slice(&out.stdout).expect("--json prints a ProbeOutcome");
    assert!(outcome.is_ok(), "{outcome:?}");

    nats.kill();
    let start = Instant::now();
    let out = muster(&["check", "--nats", &nats.url(), "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(start.elapsed() < HANG_GUARD);
    assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
}

#[test]
fn check_bad_urls_are_usage_errors() {
    for args in [
        &["check", "--redis", "http://127.0.0.1:6379"][..],
        &["check", "--redis", "not a url"][..],
        &["check", "--redis", "redis://127.0.0.1:99999"][..],
        &["check", "--nats", "redis://127.0.0.1:4222"][..],
        &["check", "--nats", "nats://"][..],
    ] {
        let out = muster(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    // A malformed URL never echoes its password.
    let out = muster(&["check", "--redis", "user:sekrit@127.0.0.1:6379"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("sekrit"), "{}", text(&out));
    // Two targets at once.
    let out = muster(&[
        "check",
        "--redis",
        "redis://127.0.0.1:6379",
        "--nats",
        "nats://127.0.0.1:4222",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
