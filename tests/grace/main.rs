//! The grace area: the start-up history store, learned grace periods across
//! real starts, `muster tune`, and the image-size model; they share
//! `support::grace` (one muster.yaml, `tune --json`, sample seeding).
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod history;
mod history_store;
mod large_image;
mod tune;
