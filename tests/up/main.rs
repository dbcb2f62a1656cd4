//! The up area: ordered start on the real engine through the library, and
//! `muster up --serve` end to end.
//!
//! One test binary per area (one file per topic below) instead of one per
//! file: the suite links 10 test binaries, not 33. The set-up the topic files
//! share (load a compose text, `up` it, inspect or exec into service `app`'s
//! container) lives here, once.

#[path = "../support/mod.rs"]
mod support;

mod blkio;
mod devices;
mod engine;
mod mounts;
mod network_mode;
mod secrets;
mod supervise_e2e;

use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::InspectContainerOptions;
use muster::compose::Project;
use muster::engine::Engine;
use muster::supervisor::start::{up, UpError, UpOptions, UpReport};
use muster::supervisor::StateStore;
use support::{DockerProject, TempDir};

/// Writes `text` as dir/compose.yaml and loads it as project `project`, with
/// `env` as its whole environment (nothing of the test's own).
pub(crate) fn load_compose(
    project: &str,
    dir: &TempDir,
    text: &str,
    env: &[(&str, &str)],
) -> Project {
    support::write_compose(dir, text);
    support::compose::load_dir(dir.path(), &["compose.yaml"], env, Some(project)).expect("loads")
}

/// `up` of `p`, as `muster up` runs it, waiting up to `wait`.
pub(crate) async fn up_within(
    engine: &Engine,
    p: &Project,
    wait: Duration,
) -> (StateStore, Result<UpReport, UpError>) {
    let writes =
        muster::supervisor::runner::StateWrites::own(muster::supervisor::Writer::new(&p.name));
    let store = writes.store().clone();
    let options = UpOptions {
        wait_timeout: Some(wait),
        ..Default::default()
    };
    let result = up(engine, p, &options, &writes).await;
    (store, result)
}

/// [`load_compose`] then `up`, which must succeed within 60 s; returns the
/// name of service `app`'s container.
pub(crate) async fn up_compose(
    engine: &Engine,
    guard: &DockerProject,
    dir: &TempDir,
    text: &str,
    env: &[(&str, &str)],
) -> String {
    let p = load_compose(&guard.name, dir, text, env);
    let (_, result) = up_within(engine, &p, Duration::from_secs(60)).await;
    result.expect("up");
    format!("{}-app-1", guard.name)
}

/// `up` of `p`, which must not bring service `app` up: `up`'s error, or
/// (when `up` returns) its outcome and `app`'s reason.
pub(crate) async fn up_refused(engine: &Engine, p: &Project) -> String {
    let (store, result) = up_within(engine, p, Duration::from_secs(30)).await;
    match result {
        Err(e) => e.to_string(),
        Ok(report) => format!(
            "{:?} {}",
            report.outcome,
            store.snapshot().services["app"].reason
        ),
    }
}

/// The engine's whole inspect of container `name` (the library's own
/// `inspect_container` keeps only what muster reads).
pub(crate) async fn inspect_full(
    engine: &Engine,
    name: &str,
) -> Result<ContainerInspectResponse, bollard::errors::Error> {
    engine
        .docker()
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
}

/// `sh -c SCRIPT` in a running container; its stdout.
pub(crate) fn exec(container: &str, script: &str) -> String {
    support::docker(&["exec", container, "sh", "-c", script])
}
