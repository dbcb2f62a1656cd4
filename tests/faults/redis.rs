//! Redis restarts, with and without persistence, under the parts of muster
//! that keep a link to it: the agent watcher (a restart that loses keys is a
//! coordination outage, not agents gone), the agents' client (what it said
//! during the outage is what comes back) and the history store (writes reach
//! Redis again).

use std::time::{Duration, Instant};

use crate::support::signal::watcher;
use crate::support::{redis_cli, RedisServer};
use muster::history::HistoryStore;
use muster::signal::{Client, ClientOptions, WatcherConfig};
use serde_json::json;

/// Issue #15 item 1: Redis restarts without persistence and loses every key.
/// A live agent (heartbeating) keeps its `ready` through the outage and the
/// re-assertion; one that stopped heartbeating during the outage is not
/// ready once the hold after the outage ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_that_loses_keys_is_not_an_agent_failure() {
    let mut redis = RedisServer::start();
    let ns = "ro";
    let mut cfg = WatcherConfig::new(redis.url(), ns);
    cfg.poll_period = Duration::from_millis(100);
    cfg.resync_period = Duration::from_secs(3600);
    // TTL 4 s below: heartbeats every 2 s; the hold covers one of them.
    cfg.reassert_window = Duration::from_secs(3);
    let w = watcher(cfg).await;
    let opts = ClientOptions {
        namespace: ns.into(),
        ttl: Duration::from_secs(4),
        ..ClientOptions::default()
    };
    let live = Client::connect_with(&redis.url(), opts.clone())
        .await
        .unwrap();
    live.mark_ready("live", &[]).await.unwrap();
    {
        // An agent that is gone by the time Redis is back (its client drops
        // here, so nothing re-asserts its key).
        let gone = Client::connect_with(&redis.url(), opts).await.unwrap();
        gone.mark_ready("gone", &[]).await.unwrap();
    }
    for agent in ["live", "gone"] {
        assert!(w
            .wait_for(agent, Duration::from_secs(2), |r| r.is_ready())
            .await
            .is_some());
    }
    let mut changes = w.changes();

    tokio::task::block_in_place(|| redis.restart());
    assert!(
        w.wait_subscribed(Duration::from_secs(10)).await,
        "no re-subscribe"
    );
    // Through the hold, both keep their state; the live one re-asserts.
    let gone_seen = w
        .wait_for("gone", Duration::from_secs(8), |r| !r.is_ready())
        .await
        .expect("the agent that did not re-assert is not ready after the hold");
    assert!(
        gone_seen.readiness.reason().contains("no ready signal"),
        "{:?}",
        gone_seen.readiness
    );
    assert!(w.readiness("live").is_ready());
    // The live agent's key is back in Redis (re-asserted by its heartbeat).
    let stored = redis_cli(redis.port, &["GET", "ro:ready:live"]);
    assert!(stored.contains("\"ready\""), "{stored}");
    // And the watcher never said anything but ready for it.
    while let Ok(change) = changes.try_recv() {
        if change.agent == "live" {
            assert!(
                change.view.readiness.is_ready(),
                "live agent flipped: {:?}",
                change.view
            );
        }
    }
    drop(live);
}

/// A state said while Redis is away is the one the heartbeat re-asserts when
/// Redis is back: an agent that said "not ready" during the outage must not
/// come back as ready (the Python client already kept the new state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_said_during_an_outage_is_the_one_reasserted() {
    let mut redis = RedisServer::start();
    let opts = ClientOptions {
        namespace: "ou".into(),
        ttl: Duration::from_secs(2),
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&redis.url(), opts).await.unwrap();
    client.mark_ready("w", &[]).await.unwrap();
    tokio::task::block_in_place(|| redis.kill());
    assert!(client.mark_not_ready("w", "draining").await.is_err());
    tokio::task::block_in_place(|| redis.restart());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client.read("w").await;
        if let Ok(r) = &r {
            if r.reason() == "draining" {
                break;
            }
            assert!(!r.is_ready(), "re-asserted the old ready: {r:?}");
        }
        assert!(
            Instant::now() < deadline,
            "not-ready never re-asserted: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue #15 item 2: after Redis restarts, history writes reach it again
/// (before, every write failed with "broken pipe" for as long as muster ran).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_reconnects_after_redis_restarts() {
    let mut redis = RedisServer::start();
    let store = HistoryStore::redis(&redis.url(), "mtrc", "proj")
        .await
        .unwrap();
    store
        .push("restarts:db", &json!({"n": 1}), 10)
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        redis.kill();
        redis.restart();
    });
    // The first command may meet the broken link; within a few tries the
    // manager has a new connection and writes land again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut errors = Vec::new();
    loop {
        match store.push("restarts:db", &json!({"n": 2}), 10).await {
            Ok(()) => break,
            Err(e) => errors.push(e.to_string()),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "history never wrote to the restarted Redis: {errors:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(errors.len() <= 2, "too many failed writes: {errors:?}");
    // The restarted Redis has no persistence here: only the new entry.
    assert_eq!(
        store.list("restarts:db", 10).await.unwrap(),
        vec![json!({"n": 2})]
    );
    // And it keeps working.
    assert_eq!(store.next_counter("restarts:total").await.unwrap(), 1);
}
