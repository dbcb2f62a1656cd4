//! muster: a health supervisor for docker-compose stacks.
//!
//! Data flows one way: compose files -> [`compose`] model -> [`compose::graph`] ->
//! [`supervisor`] -> [`engine`] / [`probe`] -> state -> [`health`] endpoint / CLI.
//! The supervisor owns the state; everything else reads a snapshot.

pub mod clock;
pub mod compose;
pub mod config;
pub mod duration;
pub mod engine;
pub mod error_text;
pub mod grace;
pub mod health;
pub mod history;
pub mod link;
pub mod notify;
pub mod probe;
pub mod rollout;
pub mod signal;
pub mod supervisor;
pub mod swarm;
pub(crate) mod tls;
pub mod url;
