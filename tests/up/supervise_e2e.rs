//! End to end: `muster up --serve` on a real Docker engine with a real
//! coordination Redis. A service gated by a redis probe becomes ready through
//! muster's probe (not Docker health); an agent service becomes ready only when
//! the agent signals it, and /readyz over HTTP follows the signal both ways.

use crate::support::{self, Muster};
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

#[test]
fn up_serve_gates_on_probes_and_readyz_follows_agent_signals() {
    support::ensure_test_images();
    let project = DockerProject::new("e2eserve");
    let coordination = RedisServer::start();
    let dir = TempDir::new("muster-e2e");
    let cache_port = support::free_port();
    let listen_port = support::free_port();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
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
          failure_threshold: 1
      grace: off
"#
        ),
    )
    .unwrap();
    let namespace = format!("e2e{}", std::process::id());
    let _guard = muster(&coordination, &namespace)
        .stack(&file, &project.name, listen_port)
        .spawn_quiet(&["up", "--serve"]);

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
    let status = muster(&coordination, &namespace)
        .args(["signal", "ready", "--agent", "worker"])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_status(listen_port, "/readyz", 200, Duration::from_secs(10));

    // And back when it says not ready, with its reason.
    let status = muster(&coordination, &namespace)
        .args([
            "signal",
            "not-ready",
            "--agent",
            "worker",
            "--reason",
            "lost GPU",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let verbose = wait_for_status(listen_port, "/readyz?verbose", 503, Duration::from_secs(10));
    assert!(
        verbose.contains("[-]worker") && verbose.contains("lost GPU"),
        "{verbose}"
    );

    // Issue #15 item 3: a ready agent that says it is starting again (a
    // model reload, with a start deadline) is not ready while it reloads,
    // and is not restarted for it.
    let signal = |args: &[&str]| {
        let status = muster(&coordination, &namespace)
            .args(["signal"])
            .args(args)
            .args(["--agent", "worker"])
            .status()
            .unwrap();
        assert!(status.success(), "signal {args:?}");
    };
    signal(&["ready"]);
    wait_for_status(listen_port, "/readyz", 200, Duration::from_secs(10));
    signal(&[
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
    signal(&["ready"]);
    wait_for_status(listen_port, "/readyz", 200, Duration::from_secs(10));
}

/// `up --serve cache` starts cache only: worker (probed, never started) is
/// not supervised, so /readyz turns 200 once cache is ready and /status has
/// no worker.
#[test]
fn up_serve_of_one_service_supervises_only_what_it_starts() {
    support::ensure_test_images();
    let project = DockerProject::new("e2epart");
    let coordination = RedisServer::start();
    let dir = TempDir::new("muster-e2e-part");
    let cache_port = support::free_port();
    let listen_port = support::free_port();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
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
"#
        ),
    )
    .unwrap();
    let namespace = format!("e2epart{}", std::process::id());
    let _guard = muster(&coordination, &namespace)
        .stack(&file, &project.name, listen_port)
        .spawn_quiet(&["up", "--serve", "cache"]);

    let verbose = wait_for_status(listen_port, "/readyz?verbose", 200, Duration::from_secs(60));
    assert!(verbose.contains("[+]cache"), "{verbose}");
    assert!(!verbose.contains("worker"), "{verbose}");
    let (status, body) = http_get(listen_port, "/status").expect("GET /status");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"cache\""), "{body}");
    assert!(!body.contains("\"worker\""), "{body}");
    let names = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=com.docker.compose.project={}", project.name))
        .output()
        .expect("docker ps");
    let names = String::from_utf8_lossy(&names.stdout);
    assert!(
        names.contains("-cache-1") && !names.contains("-worker-"),
        "{names}"
    );
}
