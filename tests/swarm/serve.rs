//! `muster up --swarm --serve` as one muster per stack, with the commands of
//! a single-host supervisor: a second one for the same stack is refused
//! (the project lock); `muster status` reads its /status (a row per task);
//! `muster pause` stops its replacements until `muster resume`; and a
//! replacement is recorded in the durable restart history, so the next
//! muster starts with the same count and budget.

use std::time::Duration;

use crate::supervise::{wait_status, Serving};
use crate::support::hosts::{self, SwarmStack};
use crate::support::{free_port, text};

const STACK: &str = r#"
services:
  cache:
    image: muster-test/redis:1
    deploy:
      replicas: 2
      placement:
        preferences:
          - spread: node.id
    x-muster:
      probes:
        - redis: { url: "redis://cache:6379" }
          period: 500ms
          failure_threshold: 2
      restart: { budget: 3, window: 10m, backoff: 1s }
"#;

fn tasks(status: &serde_json::Value) -> Vec<serde_json::Value> {
    status["services"]["cache"]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["desired"] == "running")
        .cloned()
        .collect()
}

fn all_ready(status: &serde_json::Value) -> bool {
    let t = tasks(status);
    status["services"]["cache"]["state"] == "ready"
        && t.len() == 2
        && t.iter().all(|t| t["ready"] == true)
}

#[test]
fn one_swarm_supervisor_per_stack_with_status_pause_and_durable_restarts() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "serve");
    // One history store for every muster of this test (the musters run in
    // the overlay's namespace, where no test Redis is): locks, pauses and
    // restart records are in it.
    let dir = crate::support::TempDir::new("swarm-serve");
    let state = dir.path().join("state.json");
    let muster = || stack.muster().state_file(&state);
    let file = stack.compose_file(STACK).to_string_lossy().to_string();
    let limit = Duration::from_secs(120);

    let port = free_port();
    let mut first = Serving(stack.serve_with(muster(), STACK, port, &["--wait-timeout", "120s"]));
    let status = wait_status(
        &mut first,
        &stack,
        port,
        "both tasks ready",
        limit,
        all_ready,
    );
    let pid = first.0.id();

    // A second `up --swarm --serve` of the same stack is refused before it
    // deploys anything, naming the first one.
    let second_port = free_port();
    let listen = format!("127.0.0.1:{second_port}");
    let mut cmd = muster();
    cmd.args([
        "-f",
        &file,
        "-p",
        &stack.name,
        "--listen",
        &listen,
        "up",
        "--swarm",
        "--serve",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut second = cmd.spawn().expect("spawn the second muster");
    let deadline = std::time::Instant::now() + limit;
    while second.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second muster was not refused");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = second.wait_with_output().expect("output");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("is already supervised by muster"), "{all}");
    assert!(
        all.contains(&format!("pid {pid} on 127.0.0.1:{port}")),
        "{all}"
    );
    assert!(stack.http_get(second_port, "/healthz").is_none(), "{all}");

    // `muster status` reads the serving muster's /status: a row per task.
    let at = format!("127.0.0.1:{port}");
    let status_cmd = || muster().run(&["-f", &file, "-p", &stack.name, "--listen", &at, "status"]);
    let out = status_cmd();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for t in tasks(&status) {
        let id: String = t["task_id"].as_str().unwrap().chars().take(12).collect();
        let line = all
            .lines()
            .find(|l| l.contains(&format!("task {id}")))
            .unwrap_or_else(|| panic!("no row for task {id}: {all}"));
        assert!(line.contains("ready (running)"), "{line}");
        assert!(
            line.contains(&format!("node {}", t["node"].as_str().unwrap())),
            "{line}"
        );
    }
    let out = muster().run(&[
        "-f",
        &file,
        "-p",
        &stack.name,
        "--listen",
        &at,
        "--json",
        "status",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(tasks(&json).len(), 2, "{json}");

    // Paused: a task that stops answering makes the service unready, and
    // Swarm is not asked to replace anything.
    let out = muster().run(&[
        "-f",
        &file,
        "-p",
        &stack.name,
        "pause",
        "cache",
        "--reason",
        "maintenance",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    wait_status(&mut first, &stack, port, "cache paused", limit, |s| {
        s["services"]["cache"]["heal"]["paused"]["reason"] == "maintenance"
    });
    let broken = crate::supervise::break_task(&stack, &tasks(&status)[0]);
    wait_status(&mut first, &stack, port, "cache unready", limit, |s| {
        s["services"]["cache"]["state"] == "unready"
    });
    // Past the threshold (2 polls of 500 ms) and the backoff (1 s) twice over.
    std::thread::sleep(Duration::from_secs(5));
    let force = || stack.inspect("cache", "{{.Spec.TaskTemplate.ForceUpdate}}");
    assert_eq!(force(), "0", "no replacement while paused");
    let out = status_cmd();
    let all = text(&out);
    let row = all
        .lines()
        .find(|l| l.starts_with("cache"))
        .unwrap_or_default();
    assert!(
        row.contains("unready (paused)") && row.contains("maintenance"),
        "{all}"
    );

    // Resumed: the broken task is replaced through Swarm, and recorded.
    let out = muster().run(&["-f", &file, "-p", &stack.name, "resume", "cache"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_status(
        &mut first,
        &stack,
        port,
        "the broken task replaced",
        limit,
        |s| {
            s["services"]["cache"]["heal"]["muster_restarts"] == 1
                && all_ready(s)
                && tasks(s).iter().all(|t| t["task_id"] != broken.as_str())
        },
    );
    assert_eq!(force(), "1");
    drop(first);

    // The next muster (the dead one's lock is taken over at once) starts
    // with the recorded replacement: its count, budget and note.
    let port = free_port();
    let mut next = Serving(stack.serve_with(muster(), STACK, port, &["--wait-timeout", "120s"]));
    let status = wait_status(&mut next, &stack, port, "ready again", limit, all_ready);
    let heal = &status["services"]["cache"]["heal"];
    assert_eq!(heal["muster_restarts"], 1, "{heal}");
    assert_eq!(heal["budget_used"], 1, "{heal}");
    assert_eq!(heal["last_restart"]["by"], "muster", "{heal}");
    let reason = heal["last_restart"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("force-update"), "{heal}");
    assert!(reason.contains(&broken[..12]), "{heal}");
}
