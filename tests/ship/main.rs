//! The ship area: what is shipped, tested as a user runs it: the container
//! image and the shipped redis.conf with its ACL users.
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33.

#[path = "../support/mod.rs"]
mod support;

mod image;
mod redis_conf;
