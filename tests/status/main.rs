//! The status area: `muster status` and `muster check --redis/--nats` through
//! the binary against the test's own servers, isolated from a muster or Redis
//! a user runs on the default addresses.
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod check_infra;
mod cli;
mod compose;
mod logs;
mod right_muster;
mod watch;
