//! Maintenance (issue 18 item 5) through the binary on a real engine:
//! `muster pause web` stops healing and alerts for `web` (its unready state
//! is not restarted), shows in /status, `muster status`, /readyz?verbose and
//! /metrics, survives a restart of muster (it is kept in Redis with the
//! history), and `muster resume web` hands it back to the healer, which then
//! restarts it. Pausing an unknown service is an error naming the known ones.

use crate::on_unhealthy::breakable_service;
use crate::support::grace::wait_service;
use crate::support::{self, http_get, DockerProject, Muster, RedisServer, TempDir};
use std::process::{Command, Output};
use std::time::Duration;

/// `/status/web` once `ok` holds for it (90 s at most).
fn wait_web(port: u16, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    wait_service(port, "web", Duration::from_secs(90), ok)
}

fn started_at(container: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.StartedAt}}", container])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn text(out: &Output) -> String {
    support::text(out)
}

#[test]
fn pause_stops_healing_until_resumed_and_survives_a_muster_restart() {
    support::ensure_test_images();
    let project = DockerProject::new("pause");
    let redis = RedisServer::start();
    let dir = TempDir::new("muster-pause");
    let file = dir.path().join("compose.yaml");
    // `web` is ready while /tmp/ready exists; removing it makes web unready.
    std::fs::write(
        &file,
        format!("services:\n{}", breakable_service("web", "restart")),
    )
    .unwrap();
    let port = support::free_port();
    let muster = || {
        Muster::new()
            .dir(dir.path())
            .redis(&redis.url())
            .stack(&file, &project.name, port)
    };
    let spawn = |sub: &str| match sub {
        "up" => muster().spawn_quiet(&["up", "--serve"]),
        _ => muster().spawn_quiet(&[sub]),
    };
    let container = format!("{}-web-1", project.name);

    let first = spawn("up");
    wait_web(port, |v| v["state"] == "ready");

    // Bad input: an unknown service, named with the known ones.
    let out = muster().run(&["pause", "ghost"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("unknown service \"ghost\"") && text(&out).contains("web"),
        "{}",
        text(&out)
    );

    let out = muster().run(&["pause", "web", "--reason", "db migration"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("paused by"), "{}", text(&out));
    let v = wait_web(port, |v| v["heal"]["paused"]["reason"] == "db migration");
    let before = started_at(&container);
    assert_eq!(v["heal"]["muster_restarts"], 0);

    // Break it: unready, and left alone.
    let rm = Command::new("docker")
        .args(["exec", &container, "rm", "/tmp/ready"])
        .output()
        .unwrap();
    assert!(rm.status.success(), "{}", text(&rm));
    wait_web(port, |v| v["state"] == "unready");
    std::thread::sleep(Duration::from_secs(3));
    let v = wait_web(port, |_| true);
    assert_eq!(v["heal"]["muster_restarts"], 0, "{v:#}");
    assert!(v["heal"]["alert"].is_null(), "{v:#}");
    assert_eq!(
        started_at(&container),
        before,
        "a paused service was restarted"
    );

    // Shown everywhere.
    let (code, verbose) = http_get(port, "/readyz?verbose").unwrap();
    assert_eq!(code, 503);
    assert!(
        verbose.contains("[-]web failed:") && verbose.contains("paused by"),
        "{verbose}"
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("muster_service_paused{service=\"web\"} 1"),
        "{metrics}"
    );
    let out = muster().run(&["status"]);
    let row = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("web"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        row.contains("unready (paused)") && row.contains("db migration"),
        "{}",
        text(&out)
    );

    // A new muster (serve, the stack runs) still sees the pause.
    drop(first);
    let _second = spawn("serve");
    let v = wait_web(port, |v| {
        v["state"] == "unready" && !v["heal"]["paused"].is_null()
    });
    assert_eq!(v["heal"]["paused"]["reason"], "db migration");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(started_at(&container), before, "restarted while paused");

    // Resumed: the healer restarts it, and the restart makes it ready.
    let out = muster().run(&["--json", "resume", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["resumed"], true);
    let v = wait_web(port, |v| {
        v["state"] == "ready" && v["heal"]["muster_restarts"].as_u64() >= Some(1)
    });
    assert!(v["heal"]["paused"].is_null(), "{v:#}");
    assert_ne!(started_at(&container), before);
    let out = muster().run(&["resume", "web"]);
    assert!(text(&out).contains("was not paused"), "{}", text(&out));
}
