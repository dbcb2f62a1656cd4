//! `x-muster.on_unhealthy` (issue 18 item 3) on a real engine through the
//! binary: `stop` stops the unhealthy service's container instead of
//! restarting it, `none` leaves it running and only reports (alert in
//! /status); an unknown value is a compose error with file, line, column and
//! the allowed values.

use crate::support::grace::wait_service;
use crate::support::{self, text, DockerProject, Muster, TempDir, BUSYBOX_IMAGE};
use std::process::Command;
use std::time::Duration;

fn inspect(container: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, container])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A compose service (indented under `services:`) that is ready while
/// `/tmp/ready` exists in its container (`docker exec … rm /tmp/ready` breaks
/// it), with `on_unhealthy: ACTION` and a 200 ms restart backoff.
pub(crate) fn breakable_service(name: &str, action: &str) -> String {
    format!(
        r#"  {name}:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "touch /tmp/ready; exec sleep 100000"]
    stop_grace_period: 1s
    x-muster:
      on_unhealthy: {action}
      probes:
        - exec: {{ command: ["test", "-f", "/tmp/ready"] }}
          period: 200ms
          failure_threshold: 2
          timeout: 10s
      grace: 1s
      restart: {{ backoff: 200ms }}
"#
    )
}

#[test]
fn stop_stops_and_none_only_reports() {
    support::ensure_test_images();
    let project = DockerProject::new("onunhealthy");
    let dir = TempDir::new("muster-onunhealthy");
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n{}{}",
            breakable_service("stopper", "stop"),
            breakable_service("watcher", "none")
        ),
    )
    .unwrap();
    let port = support::free_port();
    let _muster = Muster::new()
        .dir(dir.path())
        .stack(&file, &project.name, port)
        .spawn_quiet(&["up", "--serve"]);
    let within = Duration::from_secs(90);
    for name in ["stopper", "watcher"] {
        wait_service(port, name, within, |v| v["state"] == "ready");
    }
    let stopper = format!("{}-stopper-1", project.name);
    let watcher = format!("{}-watcher-1", project.name);
    let watcher_started = inspect(&watcher, "{{.State.StartedAt}}");
    for c in [&stopper, &watcher] {
        let out = Command::new("docker")
            .args(["exec", c, "rm", "/tmp/ready"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }

    let v = wait_service(port, "stopper", within, |v| {
        v["heal"]["alert"]
            .as_str()
            .is_some_and(|a| a.contains("stopped by muster (on_unhealthy: stop)"))
    });
    assert_eq!(v["heal"]["muster_restarts"], 0, "{v:#}");
    let deadline = std::time::Instant::now() + within;
    while inspect(&stopper, "{{.State.Running}}") != "false" {
        assert!(std::time::Instant::now() < deadline, "stopper still runs");
        std::thread::sleep(Duration::from_millis(200));
    }

    let v = wait_service(port, "watcher", within, |v| {
        v["heal"]["alert"]
            .as_str()
            .is_some_and(|a| a.contains("on_unhealthy: none"))
    });
    assert_eq!(v["state"], "unready", "{v:#}");
    std::thread::sleep(Duration::from_secs(2));
    let v = wait_service(port, "watcher", within, |_| true);
    assert_eq!(v["heal"]["muster_restarts"], 0, "{v:#}");
    assert_eq!(inspect(&watcher, "{{.State.Running}}"), "true");
    assert_eq!(inspect(&watcher, "{{.State.StartedAt}}"), watcher_started);
}

#[test]
fn an_unknown_on_unhealthy_value_names_the_place_and_the_allowed_values() {
    let dir = TempDir::new("muster-onunhealthy-bad");
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    image: x\n    x-muster:\n      on_unhealthy: reboot\n",
    )
    .unwrap();
    let out = Muster::new()
        .dir(dir.path())
        .run(&["-f", &file.display().to_string(), "config"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("compose.yaml:5:21"), "{all}");
    assert!(all.contains("services.web.x-muster.on_unhealthy"), "{all}");
    assert!(
        all.contains("\"reboot\"") && all.contains("allowed values: restart, stop, kill, none"),
        "{all}"
    );
    assert!(out.stdout.is_empty());
}
