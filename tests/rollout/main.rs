//! The rollout area: rollouts on the real engine with the web images and
//! polling client of `support::rollout`: traffic, failure and rollback,
//! recovery after a kill, options and bad input.
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod failure;
mod input;
mod network_mode;
mod options;
mod recovery;
mod serve;
mod traffic;
