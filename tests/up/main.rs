//! The up area: ordered start on the real engine through the library, and
//! `muster up --serve` end to end.
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod blkio;
mod devices;
mod engine;
mod mounts;
mod network_mode;
mod secrets;
mod supervise_e2e;
