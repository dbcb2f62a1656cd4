//! Foreign data under the namespace: keys and values that anyone allowed to
//! write there (the `agent` ACL user included) can create. None of it may
//! make the watcher spin, grow without bound, or forge lines in what muster
//! prints (issue #15, items 7 and 8).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use std::time::Duration;

use crate::support::signal::client;
use crate::support::{Muster, RedisServer};
use muster::signal::{AgentWatcher, Readiness, WatcherConfig};

/// `redis-cli` with raw byte arguments (keys that are not UTF-8).
fn redis_cli_raw(port: u16, args: &[&[u8]]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args.iter().map(|a| OsStr::from_bytes(a)))
        .output()
        .unwrap();
    assert!(out.status.success(), "redis-cli failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// How many times Redis has run `cmd` since it started.
fn calls(port: u16, cmd: &str) -> u64 {
    let stats = redis_cli_raw(port, &[b"INFO", b"commandstats"]);
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_names_no_valid_agent_is_skipped_without_a_busy_loop() {
    let redis = RedisServer::start();
    // Not UTF-8, and UTF-8 but not a valid agent name.
    redis_cli_raw(redis.port, &[b"SET", b"fk:ready:\xff\xfe", b"x"]);
    redis_cli_raw(redis.port, &[b"SET", b"fk:ready:bad name!", b"x"]);
    client(&redis.url(), "fk")
        .await
        .mark_ready("good", &[])
        .await
        .unwrap();

    let mut cfg = WatcherConfig::new(redis.url(), "fk");
    cfg.poll_period = Duration::from_millis(100);
    cfg.resync_period = Duration::from_millis(500);
    let w = AgentWatcher::start(cfg).unwrap();
    // Before the fix the first resync failed on the key and the watcher
    // reconnected at once, forever: it never subscribed.
    assert!(
        w.wait_subscribed(Duration::from_secs(5)).await,
        "watcher did not subscribe with a foreign key present"
    );
    // The valid agent next to them is read as usual (found by the SCAN).
    assert!(w
        .wait_for("good", Duration::from_secs(2), |r| r.is_ready())
        .await
        .is_some());

    // Over 2 s at a 500 ms resync the watcher scans a handful of times; a
    // busy loop scans thousands of times.
    let before = calls(redis.port, "scan");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let scans = calls(redis.port, "scan") - before;
    assert!(scans <= 20, "{scans} SCANs in 2 s: the watcher is looping");
    // Expiry of such a key is ignored as well (no panic, nothing tracked).
    redis_cli_raw(redis.port, &[b"PEXPIRE", b"fk:ready:\xff\xfe", b"1"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.readiness("good").is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_text_is_bounded_and_single_line_everywhere_it_is_read() {
    let redis = RedisServer::start();
    let ns = "ft";
    let mut cfg = WatcherConfig::new(redis.url(), ns);
    cfg.resync_period = Duration::from_millis(300);
    let w = AgentWatcher::start(cfg).unwrap();
    assert!(w.wait_subscribed(Duration::from_secs(5)).await);
    w.track("big").unwrap();
    w.track("forge").unwrap();

    // A 10 MB progress, written straight into the key (the client refuses
    // nothing of the kind, but a foreign writer can).
    let huge = format!(
        r#"{{"status":"starting","since":1,"progress":"{}"}}"#,
        "x".repeat(10 << 20)
    );
    // Through a client connection: 10 MB is more than one argv entry may hold.
    let raw = redis::Client::open(redis.url()).unwrap();
    let mut conn = raw.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("ft:ready:big")
        .arg(huge.as_bytes())
        .query_async(&mut conn)
        .await
        .unwrap();
    let v = w
        .wait_for("big", Duration::from_secs(3), |r| {
            matches!(r, Readiness::Corrupt { .. })
        })
        .await
        .expect("oversized value read as corrupt");
    assert!(v.readiness.reason().len() < 200, "{}", v.readiness.reason());

    // A reason with a newline and a terminal escape, through the real client.
    let forged = "bye\nmuster: all services ready\x1b[2K";
    client(&redis.url(), ns)
        .await
        .mark_not_ready("forge", forged)
        .await
        .unwrap();
    let v = w
        .wait_for("forge", Duration::from_secs(2), |r| {
            r.reason().starts_with("bye")
        })
        .await
        .expect("not ready seen");
    let reason = v.readiness.reason();
    assert_eq!(reason, "bye\\nmuster: all services ready\\u{1b}[2K");

    // `muster check --agent` prints the same single line.
    let out = Muster::new()
        .redis(&redis.url())
        .namespace(ns)
        .run(&["check", "--agent", "forge"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("all services ready"))
            .count(),
        1,
        "{stderr:?}"
    );
    assert!(
        stderr
            .lines()
            .all(|l| !l.starts_with("muster: all services")),
        "{stderr:?}"
    );
}

/// Issue #15 item 12: a ready or not-ready key of another type (someone ran
/// LPUSH on it) no longer makes every `signal` fail with WRONGTYPE: the
/// protocol's scripts replace it.
#[test]
fn a_wrong_typed_key_is_replaced_by_the_next_signal() {
    let redis = RedisServer::start();
    let ns = "fw";
    redis_cli_raw(redis.port, &[b"LPUSH", b"fw:ready:wt", b"x"]);
    redis_cli_raw(redis.port, &[b"HSET", b"fw:notready:wt", b"f", b"v"]);
    let muster = || Muster::new().redis(&redis.url()).namespace(ns);
    let out = muster().run(&["signal", "not-ready", "--agent", "wt", "--reason", "boot"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        redis_cli_raw(redis.port, &[b"TYPE", b"fw:notready:wt"]),
        "string"
    );
    redis_cli_raw(redis.port, &[b"LPUSH", b"fw:ready:wt2", b"x"]);
    let out = muster().run(&["signal", "ready", "--agent", "wt2"]);
    assert!(out.status.success(), "{out:?}");
    let out = muster().run(&["check", "--agent", "wt2"]);
    assert!(out.status.success(), "{out:?}");
}
