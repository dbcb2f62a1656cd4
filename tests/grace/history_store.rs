//! The durable store against a real redis-server, and its fallback to the
//! state file when Redis does not answer.

use std::time::Duration;

use crate::support::{free_port, RedisServer, TempDir};
use muster::config::{Overrides, Settings};
use muster::history::HistoryStore;
use serde_json::json;

#[tokio::test]
async fn redis_backend_keeps_capped_lists_counters_and_locks() {
    let redis = RedisServer::start();
    let store = HistoryStore::redis(&redis.url(), "hist", "proj")
        .await
        .unwrap();
    assert!(store.is_redis());
    for i in 0..7 {
        store
            .push("startup:api", &json!({ "ms": i }), 5)
            .await
            .unwrap();
    }
    let list = store.list("startup:api", 100).await.unwrap();
    assert_eq!(list.len(), 5);
    assert_eq!(list[0], json!({"ms": 6}));
    assert_eq!(list[4], json!({"ms": 2}));
    store
        .set_in_list("startup:api", 0, &json!("edited"))
        .await
        .unwrap();
    assert_eq!(
        store.list("startup:api", 1).await.unwrap(),
        vec![json!("edited")]
    );

    store.set("rollout:api", &json!({"to": 3})).await.unwrap();
    // A second store (a later muster process) sees what the first wrote.
    let again = HistoryStore::redis(&redis.url(), "hist", "proj")
        .await
        .unwrap();
    assert_eq!(
        again.get("rollout:api").await.unwrap(),
        Some(json!({"to": 3}))
    );
    assert_eq!(again.next_counter("revision:api").await.unwrap(), 1);
    assert_eq!(store.next_counter("revision:api").await.unwrap(), 2);

    let ttl = Duration::from_millis(300);
    assert_eq!(
        store.acquire_lock("rollout:api", "me", ttl).await.unwrap(),
        Ok(())
    );
    let holder = again
        .acquire_lock("rollout:api", "other", ttl)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(holder.owner, "me");
    assert!(holder.expires_in_ms <= 300);
    // The lock expires by itself: a crashed owner does not block forever.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        again
            .acquire_lock("rollout:api", "other", ttl)
            .await
            .unwrap(),
        Ok(())
    );
    // Releasing someone else's lock does nothing.
    store.release_lock("rollout:api", "me").await.unwrap();
    assert!(store
        .acquire_lock("rollout:api", "me", ttl)
        .await
        .unwrap()
        .is_err());

    // A value that is not JSON is reported, not misread.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("hist:proj:broken")
        .arg("{nope")
        .query_async(&mut conn)
        .await
        .unwrap();
    let e = store.get("broken").await.unwrap_err().to_string();
    assert!(
        e.contains("hist:proj:broken") && e.contains("not valid JSON"),
        "{e}"
    );
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_the_state_file() {
    let dir = TempDir::new("muster-history-fallback");
    let state_file = dir.path().join("nested").join("state.json");
    let settings = Settings::resolve(&Overrides {
        redis_url: Some(format!("redis://127.0.0.1:{}", free_port())),
        state_file: Some(state_file.clone()),
        ..Default::default()
    })
    .unwrap();
    let store = HistoryStore::open(&settings.history(), "proj").await;
    assert!(!store.is_redis(), "{}", store.describe());
    store
        .push("startup:db", &json!({"ms": 1200}), 10)
        .await
        .unwrap();
    assert!(state_file.is_file());
    // A new process reads it back.
    let reopened = HistoryStore::open(&settings.history(), "proj").await;
    assert_eq!(
        reopened.list("startup:db", 10).await.unwrap(),
        vec![json!({"ms": 1200})]
    );
}
