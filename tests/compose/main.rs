//! The compose area: the loader on fixtures (a controlled environment, no
//! process state), and the built binary's `config` / `graph` on the example
//! stack. Fast and engine-free, so one binary runs them all in about a second.
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod build_keys;
mod cli;
mod consistency;
mod devices;
mod errors;
mod fidelity;
mod full_example;
mod hash;
mod large;
mod load;
mod merge;
mod mounts;
mod resources;
mod runtime;
mod shell;
