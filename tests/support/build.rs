//! Helpers of the build area: a compose project in a temp directory whose
//! contexts and Dockerfiles the test writes, run through the `muster` binary,
//! and removed with everything Docker holds under its project name (the
//! containers, and the images muster built, which carry the project label).

use std::path::{Path, PathBuf};
use std::process::Output;

use super::{ensure_test_images, DockerProject, Muster, TempDir};

pub use super::stack::BUSYBOX;

/// One test's compose project on disk.
pub struct BuildStack {
    pub project: DockerProject,
    pub dir: TempDir,
}

impl BuildStack {
    pub fn new(test: &str) -> BuildStack {
        ensure_test_images();
        let project = DockerProject::new(test);
        let dir = TempDir::new(&format!("muster-build-{test}"));
        BuildStack { project, dir }
    }

    pub fn name(&self) -> &str {
        &self.project.name
    }

    /// Writes `content` to `rel` under the project directory (parents made).
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create directories");
        }
        std::fs::write(&path, content).expect("write file");
        path
    }

    /// The Dockerfile line every test Dockerfile starts with after `FROM`:
    /// every image of the build, the intermediate ones too, carries the
    /// project label, so the guard removes them even after a failed build.
    pub fn label(&self) -> String {
        format!("LABEL com.docker.compose.project={}", self.name())
    }

    /// Writes compose.yaml with `name:` set to the project's name.
    pub fn compose(&self, services_yaml: &str) -> PathBuf {
        self.write(
            "compose.yaml",
            &format!("name: {}\n{services_yaml}", self.name()),
        )
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `muster -f compose.yaml ARGS…` with the isolated defaults.
    pub fn muster(&self, args: &[&str]) -> Output {
        self.muster_env(args, &[])
    }

    /// As [`BuildStack::muster`], with extra environment variables.
    pub fn muster_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let file = self.path().join("compose.yaml");
        let mut m = Muster::new();
        for (k, v) in env {
            m.env(k, v);
        }
        let mut all: Vec<&str> = vec!["-f", file.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        m.run(&all)
    }
}

/// `docker image inspect -f FORMAT REF`, trimmed; `None` when there is no such image.
pub fn inspect_image(reference: &str, format: &str) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "-f", format, reference])
        .output()
        .expect("run docker");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `docker run --rm IMAGE ARGS…` and returns stdout.
pub fn run_in(image: &str, args: &[&str]) -> String {
    super::docker(&[&["run", "--rm", image][..], args].concat())
}
