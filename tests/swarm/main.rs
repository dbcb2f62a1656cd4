//! The swarm area: muster against a real multi-node Docker Swarm, three
//! test-owned dockerd nodes on this machine (`support::hosts`). Runnable alone:
//! `bash scripts/test.sh --test swarm`. The tests share one cluster while any
//! of them runs, so the area pays the node setup once.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod cluster;
mod deploy;
mod node_loss;
mod resources;
mod rollout;
mod secrets;
mod serve;
mod supervise;
mod update;
