//! A NATS server that restarts while muster serves (a crash, an upgrade in
//! place): the NATS-probed service must be shown as it is — unready while
//! the server is gone, ready again when it is back — and muster must not
//! restart a container that came back by itself (a restart there would be a
//! second outage muster caused).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, http_get, DockerProject, Muster, TempDir, NATS_IMAGE};
use serde_json::Value;

fn nats_status(port: u16) -> Option<Value> {
    let (code, body) = http_get(port, "/status/nats")?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

/// id, StartedAt and restart count of the project's nats container.
fn container(project: &DockerProject) -> String {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &project.label_filter()])
        .output()
        .unwrap();
    let ids = String::from_utf8_lossy(&out.stdout).to_string();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}",
            ids[0],
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_nats_restart_is_unready_then_ready_with_no_restart_by_muster() {
    support::ensure_test_images();
    let project = DockerProject::new("natsrestart");
    let dir = TempDir::new("muster-natsrestart");
    let published = support::free_port();
    let listen = support::free_port();
    let file = dir.path().join("compose.yaml");
    // The server restarts in place when it dies (as under a process
    // supervisor in the container), 0.3 s later.
    std::fs::write(
        &file,
        format!(
            r#"services:
  nats:
    image: {NATS_IMAGE}
    command: ["sh", "-c", "while :; do /usr/sbin/nats-server -a 0.0.0.0 -p 4222 & echo $$! > /tmp/nats.pid; wait; sleep 0.3; done"]
    stop_grace_period: 1s
    ports: ["127.0.0.1:{published}:4222"]
    x-muster:
      probes:
        - nats: {{ url: "nats://nats:4222" }}
          period: 100ms
          timeout: 1s
          failure_threshold: 1
"#
        ),
    )
    .unwrap();
    let mut m = Muster::new()
        .dir(dir.path())
        .stack(&file, &project.name, listen);
    m.env("MUSTER_PROBE_ADDRESS", "host");
    let _muster = m.spawn_quiet(&["up", "--serve"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while nats_status(listen).is_none_or(|s| s["state"] != "ready") {
        assert!(
            Instant::now() < deadline,
            "never ready: {:?}",
            nats_status(listen)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = container(&project);
    let id = before.split(' ').next().unwrap().to_string();

    let killed = Instant::now();
    let kill = Command::new("docker")
        .args(["exec", &id, "sh", "-c", "kill $(cat /tmp/nats.pid)"])
        .output()
        .unwrap();
    assert!(kill.status.success(), "{kill:?}");

    // Unready (with the probe's reason) while it is gone, then ready.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut unready_reason = None;
    loop {
        let s = nats_status(listen).expect("/status/nats");
        if s["state"] == "unready" {
            unready_reason = s["reason"].as_str().map(str::to_string);
        }
        if unready_reason.is_some() && s["state"] == "ready" {
            // For the README's fault table (not asserted: no timing in tests).
            eprintln!(
                "nats restart: ready again {:?} after the kill",
                killed.elapsed()
            );
            break;
        }
        assert!(Instant::now() < deadline, "not unready then ready: {s:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reason = unready_reason.unwrap();
    assert!(!reason.is_empty(), "unready without a reason");

    // Past the healer's first backoff (1 s): still ready, same container,
    // never restarted, and the history says ready -> unready -> ready.
    std::thread::sleep(Duration::from_secs(3));
    let s = nats_status(listen).unwrap();
    assert_eq!(s["state"], "ready", "{s:#}");
    assert_eq!(s["heal"]["muster_restarts"], 0, "{s:#}");
    assert_eq!(container(&project), before, "the container was restarted");
    let to: Vec<&str> = s["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["to"].as_str())
        .collect();
    assert!(
        to.ends_with(&["ready", "unready", "ready"]),
        "{to:?} ({reason})"
    );
}
