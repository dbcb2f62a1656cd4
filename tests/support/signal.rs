//! The agent-signal pieces several test areas set up the same way: a
//! watcher that has subscribed, and a client in a namespace of the test's.

use std::time::Duration;

use muster::signal::{AgentWatcher, Client, ClientOptions, WatcherConfig};

/// An [`AgentWatcher`] that has subscribed to its Redis (fails the test
/// otherwise).
pub async fn watcher(cfg: WatcherConfig) -> AgentWatcher {
    let w = AgentWatcher::start(cfg).unwrap();
    assert!(
        w.wait_subscribed(Duration::from_secs(5)).await,
        "watcher did not subscribe"
    );
    w
}

/// A client of the agents' protocol in namespace `ns`.
pub async fn client(url: &str, ns: &str) -> Client {
    let opts = ClientOptions {
        namespace: ns.into(),
        ..ClientOptions::default()
    };
    Client::connect_with(url, opts).await.unwrap()
}
