//! The signal area: `muster signal` / `check --agent` through the binary, the
//! demo agent as a process (SIGKILL, SIGTERM) and the watcher over real Redis
//! and NATS.
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod agent;
mod cli;
mod watcher;
