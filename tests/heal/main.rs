//! The heal area: healing on the real engine through the library and the
//! binary, and the notifications it sends (also over https).
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod engine;
mod notify_https;
mod on_unhealthy;
mod pause;
mod resources;
