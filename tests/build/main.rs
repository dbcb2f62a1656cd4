//! The build area: `muster build` and `up --build` / `--no-build` against the
//! real engine's build API, with contexts the tests write (`FROM scratch` and
//! the locally built muster-test/busybox:1). Every image a test builds carries
//! its compose project's label and is removed with it.
//!
//! One file per topic: the `build:` key in the model (`model`, no engine),
//! what is sent and applied (`context`), what a failed build reports
//! (`failures`), and builds inside `up` (`up`).

#[path = "../support/mod.rs"]
mod support;

mod context;
mod failures;
mod model;
mod up;
