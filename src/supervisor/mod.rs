//! The supervisor owns the per-service state machines; every other module
//! reads a [`StackSnapshot`] or follows [`StateEvent`]s.

pub mod state;

pub use state::*;
