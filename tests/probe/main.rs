//! The probe area: every probe kind against a real server (http, https with
//! a CA the test makes, redis, nats) and probes inside containers on the real
//! engine. They share the server helpers of `support`.
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod containers;
mod http;
mod https;
mod nats;
mod redis;
