//! The supervisor owns the per-service state machines; every other module
//! reads a [`StackSnapshot`] or follows [`StateEvent`]s through [`StateStore`].

pub mod heal;
pub mod learn;
pub mod lock;
pub mod machine;
pub mod once;
pub mod pause;
pub mod plan;
pub mod runner;
pub mod stack;
pub mod start;
pub mod state;
pub mod store;
pub mod supervise;
pub mod swarm;
pub mod telemetry;
pub mod usage;

pub use state::*;
pub use store::{ProbeObservation, StateStore, Writer};
