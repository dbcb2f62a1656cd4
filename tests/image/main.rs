//! The image area: pulls from a real registry (Debian's `docker-registry`,
//! started by the test support on a free loopback port), through `muster up`,
//! `muster pull` and the library: policies, one pull per image, credentials
//! from config.json and credential helpers, the registry's own errors, and a
//! service that starts while another's image still pulls.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod errors;
mod events;
mod grace;
mod interrupt;
mod order;
mod pull;
mod rollout;
mod tune;

use std::path::PathBuf;
use std::process::Output;

use support::registry::{Registry, TestImage};
use support::{DockerProject, Muster, TempDir};

/// A compose file in its own directory: `services` is `(name, image, extra
/// YAML lines for the service)`; each runs `sleep` and stops in 1 s.
pub struct Stack {
    pub dir: TempDir,
    pub file: PathBuf,
    pub project: DockerProject,
}

impl Stack {
    pub fn new(test: &str, services: &[(&str, &str, &str)]) -> Stack {
        let dir = TempDir::new("muster-image-stack");
        let mut yaml = String::from("services:\n");
        for (name, image, extra) in services {
            yaml.push_str(&format!(
                "  {name}:\n    image: {image}\n    command: [\"sh\", \"-c\", \"exec sleep 100000\"]\n    stop_grace_period: 1s\n"
            ));
            for line in extra.lines().filter(|l| !l.trim().is_empty()) {
                yaml.push_str(&format!("    {line}\n"));
            }
        }
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, yaml).expect("write compose.yaml");
        Stack {
            dir,
            file,
            project: DockerProject::new(test),
        }
    }

    /// `muster -f FILE -p PROJECT ARGS…` with the isolated defaults.
    pub fn muster(&self, muster: Muster, args: &[&str]) -> Output {
        let mut muster = muster;
        let file = self.file.display().to_string();
        let mut all = vec!["-f", file.as_str(), "-p", self.project.name.as_str()];
        all.extend_from_slice(args);
        muster.run(&all)
    }
}

/// Builds a random image of `size` bytes in `layers` layers, pushes it to
/// `registry` as `repo_tag`, removes every local copy, and returns the
/// reference plus a guard that removes what a test pulls.
pub fn pushed(
    registry: &Registry,
    local: &str,
    repo_tag: &str,
    size: usize,
    layers: usize,
) -> (String, TestImage) {
    let built = TestImage::build_random(local, size, layers);
    let reference = registry.push(local, repo_tag);
    drop(built);
    assert!(!support::registry::image_present(&reference));
    (
        reference.clone(),
        TestImage {
            names: vec![reference],
        },
    )
}

/// For the library-level tests: an `agent` service whose image was pushed to
/// a fresh registry (and is not on the engine), next to `others`, with the
/// engine and a store to run `up` on.
pub struct PullingStack {
    pub registry: Registry,
    pub image: String,
    pub project: muster::compose::Project,
    pub engine: muster::engine::Engine,
    pub store: muster::supervisor::StateStore,
    /// `up`'s writes go to a runner without probes, the store's one writer.
    pub writes: muster::supervisor::runner::StateWrites,
    _image: TestImage,
    _project: DockerProject,
}

impl PullingStack {
    pub async fn new(
        test: &str,
        size: usize,
        layers: usize,
        others: Vec<muster::compose::Service>,
    ) -> PullingStack {
        support::ensure_test_images();
        let registry = Registry::start();
        let repo_tag = format!("muster/{test}:1");
        let (image, guard) = pushed(&registry, &local_name(test), &repo_tag, size, layers);
        let project_guard = DockerProject::new(test);
        let mut agent = support::stack::sh("agent", "exec sleep 100000");
        agent.image = Some(image.clone());
        let mut services = others;
        services.push(agent);
        let project = support::stack::project(&project_guard.name, services);
        let engine = muster::engine::Engine::connect().await.expect("engine");
        let writes = muster::supervisor::runner::StateWrites::own(muster::supervisor::Writer::new(
            &project.name,
        ));
        PullingStack {
            registry,
            image,
            project,
            engine,
            store: writes.store().clone(),
            writes,
            _image: guard,
            _project: project_guard,
        }
    }

    /// Runs `up` (120 s wait timeout) on the stack in a task.
    pub fn spawn_up(
        &self,
    ) -> tokio::task::JoinHandle<
        Result<muster::supervisor::start::UpReport, muster::supervisor::start::UpError>,
    > {
        let (engine, p, writes) = (
            self.engine.clone(),
            self.project.clone(),
            self.writes.clone(),
        );
        tokio::spawn(async move {
            let options = muster::supervisor::start::UpOptions {
                wait_timeout: Some(std::time::Duration::from_secs(120)),
                ..Default::default()
            };
            muster::supervisor::start::up(&engine, &p, &options, &writes).await
        })
    }
}

/// A name unique to this test process.
pub fn local_name(what: &str) -> String {
    format!("muster-test/pull-{what}:{}", std::process::id())
}
