//! End to end: `muster up --serve` on a real Docker engine with a real
//! coordination Redis. A service gated by a redis probe becomes ready through
//! muster's probe (not Docker health); an agent service becomes ready only when
//! the agent signals it, and /readyz over HTTP follows the signal both ways.

use crate::support::{self, KillOnDrop, Muster};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{http_get, DockerProject, RedisServer, TempDir, BUSYBOX_IMAGE, REDIS_IMAGE};

fn wait_for_status(port: u16, path: &str, want: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        last = http_get(port, path);
        if let Some((status, body)) = &last {
            if *status == want {
                return body.clone();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("GET {path} did not answer {want} within {within:?}; last: {last:?}");
}

fn muster(redis: &RedisServer, namespace: &str) -> Muster {
    let mut cmd = Muster::new().redis(&redis.url()).namespace(namespace);
    // muster runs on the host here: reach services through published ports.
    cmd.env("MUSTER_PROBE_ADDRESS", "host");
    cmd
}

/// A test's stack under `muster up --serve`; dropped in field order: muster
/// first, then the files, the coordination Redis, the containers.
struct Served {
    _muster: KillOnDrop,
    _dir: TempDir,
    coordination: RedisServer,
    namespace: String,
    project: DockerProject,
    listen_port: u16,
}

/// cache (a Redis, ready by muster's redis probe) and worker (ready by its
/// agent's signal, once cache is healthy; `worker_extra` adds lines under
/// its `x-muster`), under `muster up --serve SERVICES`.
fn serve(test: &str, worker_extra: &str, services: &[&str]) -> Served {
    support::ensure_test_images();
    let project = DockerProject::new(test);
    let coordination = RedisServer::start();
    let dir = TempDir::new(&format!("muster-{test}"));
    let cache_port = support::free_port();
    let listen_port = support::free_port();
    let file = support::write_compose(
        &dir,
        &format!(
            r#"
services:
  cache:
    image: {REDIS_IMAGE}
    ports: ["127.0.0.1:{cache_port}:6379"]
    x-muster:
      probes:
        - redis: {{ url: "redis://cache:6379" }}
          period: 200ms
  worker:
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "3600"]
    depends_on:
      cache: {{ condition: service_healthy }}
    x-muster:
      probes:
        - agent: {{ name: worker }}
          period: 200ms
{worker_extra}"#
        ),
    );
    let namespace = format!("{test}{}", std::process::id());
    let args = [&["up", "--serve"][..], services].concat();
    let muster = muster(&coordination, &namespace)
        .stack(&file, &project.name, listen_port)
        .spawn_quiet(&args);
    Served {
        _muster: muster,
        _dir: dir,
        coordination,
        namespace,
        project,
        listen_port,
    }
}

impl Served {
    /// `muster signal ARGS --agent worker`, which must succeed.
    fn signal(&self, args: &[&str]) {
        let status = muster(&self.coordination, &self.namespace)
            .args(["signal"])
            .args(args)
            .args(["--agent", "worker"])
            .status()
            .unwrap();
        assert!(status.success(), "signal {args:?}");
    }
}

#[test]
fn up_serve_gates_on_probes_and_readyz_follows_agent_signals() {
    let served = serve(
        "e2e",
        "          failure_threshold: 1\n      grace: off\n",
        &[],
    );
    let listen_port = served.listen_port;

    // cache is ready through muster's redis probe; worker waits for its agent.
    let verbose = wait_for_status(listen_port, "/readyz?verbose", 503, Duration::from_secs(60));
    assert!(verbose.contains("[-]worker"), "{verbose}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = http_get(listen_port, "/status/cache").unwrap_or_default();
        if body.contains("\"state\":\"ready\"") {
            break;
        }
        assert!(Instant::now() < deadline, "cache never ready: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, cache) = http_get(listen_port, "/status/cache").unwrap();
    assert!(cache.contains("\"kind\":\"redis\""), "{cache}");

    // The agent says ready: /readyz flips to 200.
    served.signal(&["ready"]);
    wait_for_status(listen_port, "/readyz", 200, Duration::from_secs(10));

    // And back when it says not ready, with its reason.
    served.signal(&["not-ready", "--reason", "lost GPU"]);
    let verbose = wait_for_status(listen_port, "/readyz?verbose", 503, Duration::from_secs(10));
    assert!(
        verbose.contains("[-]worker") && verbose.contains("lost GPU"),
        "{verbose}"
    );

    // Issue #15 item 3: a ready agent that says it is starting again (a
    // model reload, with a start deadline) is not ready while it reloads,
    // and is not restarted for it.
    served.signal(&["ready"]);
    wait_for_status(listen_port, "/readyz", 200, Duration::from_secs(10));
    served.signal(&[
        "starting",
        "--progress",
        "reloading model",
        "--extend",
        "30s",
    ]);
    let verbose = wait_for_status(listen_port, "/readyz?verbose", 503, Duration::from_secs(10));
    assert!(
        verbose.contains("[-]worker") && verbose.contains("reloading model"),
        "{verbose}"
    );
    let (_, worker) = http_get(listen_port, "/status/worker").unwrap();
    let worker: serde_json::Value = serde_json::from_str(&worker).unwrap();
    assert_eq!(worker["state"], "starting", "{worker:#}");
    // A while inside the window: still starting, never restarted.
    std::thread::sleep(Duration::from_secs(2));
    let (_, worker) = http_get(listen_port, "/status/worker").unwrap();
    let worker: serde_json::Value = serde_json::from_str(&worker).unwrap();
    assert_eq!(worker["state"], "starting", "{worker:#}");
    assert_eq!(worker["heal"]["muster_restarts"], 0, "{worker:#}");
    served.signal(&["ready"]);
    wait_for_status(listen_port, "/readyz", 200, Duration::from_secs(10));
}

/// `up --serve cache` starts cache only: worker (probed, never started) is
/// not supervised, so /readyz turns 200 once cache is ready and /status has
/// no worker.
#[test]
fn up_serve_of_one_service_supervises_only_what_it_starts() {
    let served = serve("e2epart", "", &["cache"]);
    let listen_port = served.listen_port;

    let verbose = wait_for_status(listen_port, "/readyz?verbose", 200, Duration::from_secs(60));
    assert!(verbose.contains("[+]cache"), "{verbose}");
    assert!(!verbose.contains("worker"), "{verbose}");
    let (status, body) = http_get(listen_port, "/status").expect("GET /status");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"cache\""), "{body}");
    assert!(!body.contains("\"worker\""), "{body}");
    let names = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!(
            "label=com.docker.compose.project={}",
            served.project.name
        ))
        .output()
        .expect("docker ps");
    let names = String::from_utf8_lossy(&names.stdout);
    assert!(
        names.contains("-cache-1") && !names.contains("-worker-"),
        "{names}"
    );
}
