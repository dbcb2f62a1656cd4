//! The health area: the endpoints over real HTTP on a real `StateStore`
//! (routes, formats, connection handling); no engine, no binary.
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod conn;
mod http;
