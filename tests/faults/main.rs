//! The fault suite (issue #15): ordinary faults against the real services,
//! each asserting no false restart, no false ready, nothing lost and nothing
//! leaked. Runs alone with `bash scripts/test.sh --test faults`; the README's
//! Limits section has the table of what each fault does and what is not
//! covered yet.

#[path = "../support/mod.rs"]
mod support;

mod engine;
mod exits;
mod foreign;
mod links;
mod nats;
mod redis;
mod replicas;
mod secrets;
mod sigkill;
mod stack_down;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{http_get, DockerProject, KillOnDrop, RedisServer, TempDir};

/// A fault test's stack under `muster up --serve` (with its own Redis and
/// state file); dropped in field order: muster first, then its files and
/// Redis, then the containers.
struct Stack {
    _muster: KillOnDrop,
    _dir: TempDir,
    _redis: RedisServer,
    project: DockerProject,
    listen: u16,
}

/// `services:` (already indented) of project `test` under `muster -f FILE -p
/// PROJECT --listen 127.0.0.1:LISTEN --redis-url REDIS up --serve`, started.
fn serve(test: &str, services: &str) -> Stack {
    support::ensure_test_images();
    let project = DockerProject::new(test);
    let redis = RedisServer::start();
    let dir = TempDir::new(&format!("muster-{test}"));
    let listen = support::free_port();
    let file = support::write_compose(&dir, &format!("services:\n{services}"));
    let muster = support::Muster::new()
        .dir(dir.path())
        .state_file(dir.path().join("state.json"))
        .stack(&file, &project.name, listen)
        .spawn_quiet(&["--redis-url", &redis.url(), "up", "--serve"]);
    Stack {
        _muster: muster,
        _dir: dir,
        _redis: redis,
        project,
        listen,
    }
}

impl Stack {
    /// `/status`, when muster answers it.
    fn status(&self) -> Option<Value> {
        let (code, body) = http_get(self.listen, "/status")?;
        (code == 200).then(|| serde_json::from_str(&body).unwrap())
    }

    /// Polls `/status` until `pred` holds (90 s at most); that `/status`.
    fn wait(&self, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(v) = self.status() {
                if pred(&v) {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "never {what}: {:#}",
                self.status().unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The name of container `number` of `service`.
    fn container(&self, service: &str, number: u32) -> String {
        format!("{}-{service}-{number}", self.project.name)
    }
}
