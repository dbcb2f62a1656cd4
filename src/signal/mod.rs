//! Agent ready signals. The protocol and the client agents link live in the
//! `muster-signal` crate (re-exported here, so `muster::signal::Client` works);
//! the supervisor side is [`watcher::AgentWatcher`].

pub use muster_signal::*;

pub mod watcher;

pub use watcher::{
    AgentChange, AgentView, AgentWatcher, ExpiryNotifications, Source, WatcherConfig,
};
