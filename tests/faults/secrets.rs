//! Secrets under debug logging: the libraries muster uses log what they
//! send; passwords must still never reach the output.

use crate::support::{text, Muster, NatsServer, RedisServer};
use std::process::Output;

fn muster(args: &[&str]) -> Output {
    Muster::new().run(args)
}

/// Issue #15 item 9: at `--log debug` (and trace) the libraries muster uses
/// log what they send (async-nats logs its server URL with the password at
/// debug); the NATS and Redis passwords must still never appear.
#[test]
fn debug_logs_never_show_nats_or_redis_passwords() {
    let nats = NatsServer::start_with(false, &["--user", "ops", "--pass", "n4ts-s3cret"]);
    let redis = RedisServer::start_with(&["--requirepass", "r3dis-s3cret"]);
    let nats_url = format!("nats://ops:n4ts-s3cret@127.0.0.1:{}", nats.port);
    let redis_url = format!("redis://:r3dis-s3cret@127.0.0.1:{}", redis.port);
    for level in ["debug", "trace"] {
        for args in [
            &["--log", level, "check", "--nats", nats_url.as_str()][..],
            &["--log", level, "check", "--redis", redis_url.as_str()][..],
            // Writes to Redis and publishes on NATS: both clients connect.
            &[
                "--log",
                level,
                "--nats-url",
                nats_url.as_str(),
                "--redis-url",
                redis_url.as_str(),
                "signal",
                "ready",
                "--agent",
                "w",
            ][..],
        ] {
            let out = muster(args);
            let all = text(&out);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {all}");
            assert!(
                all.contains("DEBUG"),
                "{args:?}: no debug output at all: {all}"
            );
            assert!(
                !all.contains("n4ts-s3cret") && !all.contains("r3dis-s3cret"),
                "{args:?} printed a password: {all}"
            );
        }
    }
}
