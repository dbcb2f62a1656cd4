//! `muster up --swarm --serve`: supervision on the real 3-node swarm. A task
//! that stops answering its probe is replaced through Swarm (a force-update)
//! within the restart budget; past the budget the service is `failed` with an
//! alert, no further replacement is asked for, and its dependent is degraded.
//! /status carries every task with its node.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::free_port;
use crate::support::hosts::{self, SwarmStack};

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
      restart: { budget: 1, window: 10m, backoff: 1s }
  queue:
    image: muster-test/redis:1
    depends_on:
      cache: { condition: service_healthy }
    x-muster:
      probes:
        - redis: { url: "redis://queue:6379" }
"#;

/// Kills the serving muster when the test ends, also on a failed assertion.
pub struct Serving(pub Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `/status` until `pred` holds for it (panics, with the last status,
/// after `within`: a hang guard, not a timing assertion).
pub fn wait_status(
    muster: &mut Serving,
    stack: &SwarmStack,
    port: u16,
    what: &str,
    within: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    let mut last = serde_json::Value::Null;
    loop {
        if let Some((200, body)) = stack.http_get(port, "/status") {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                if pred(&v) {
                    return v;
                }
                last = v;
            }
        }
        if let Ok(Some(code)) = muster.0.try_wait() {
            panic!("muster exited ({code}) before {what}");
        }
        assert!(Instant::now() < deadline, "never {what}: {last:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `task` (from /status) stops answering PING: a password, and its clients
/// (muster's probe connection) disconnected, so they reconnect to NOAUTH.
/// Returns its id.
pub fn break_task(stack: &SwarmStack, task: &serde_json::Value) -> String {
    let address = task["address"].as_str().expect("address");
    assert_eq!(
        stack.redis_cli(address, &["CONFIG", "SET", "requirepass", "s3cret"]),
        "OK"
    );
    let auth = ["-a", "s3cret", "--no-auth-warning"];
    let killed = stack.redis_cli(
        address,
        &[&auth[..], &["CLIENT", "KILL", "TYPE", "normal"]].concat(),
    );
    assert!(killed.parse::<u32>().is_ok(), "CLIENT KILL: {killed}");
    task["task_id"].as_str().expect("task id").to_string()
}

fn force_updates(stack: &SwarmStack) -> String {
    stack.inspect("cache", "{{.Spec.TaskTemplate.ForceUpdate}}")
}

fn running_tasks(status: &serde_json::Value, service: &str) -> Vec<serde_json::Value> {
    status["services"][service]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["desired"] == "running")
        .cloned()
        .collect()
}

fn all_ready(status: &serde_json::Value, service: &str, n: usize) -> bool {
    let tasks = running_tasks(status, service);
    status["services"][service]["state"] == "ready"
        && tasks.len() == n
        && tasks.iter().all(|t| t["ready"] == true)
}

#[test]
fn an_unready_task_is_replaced_through_swarm_within_the_restart_budget() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "heal");
    let port = free_port();
    let mut muster = Serving(stack.serve(STACK, port, &["--wait-timeout", "120s"]));
    let limit = Duration::from_secs(120);

    let status = wait_status(
        &mut muster,
        &stack,
        port,
        "both services ready",
        limit,
        |s| all_ready(s, "cache", 2) && all_ready(s, "queue", 1),
    );
    let tasks = running_tasks(&status, "cache");
    for t in &tasks {
        assert!(t["node"].as_str().is_some_and(|n| !n.is_empty()), "{t}");
        assert_eq!(t["node_state"], "ready", "{t}");
        assert!(t["probe"].as_str().unwrap_or("").contains("ok"), "{t}");
    }
    let (code, body) = stack.http_get(port, "/readyz?verbose").expect("readyz");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("tasks: 2 ready"), "{body}");
    let (_, metrics) = stack.http_get(port, "/metrics").expect("metrics");
    assert!(
        metrics.contains("muster_swarm_task_ready{service=\"cache\""),
        "{metrics}"
    );
    assert_eq!(force_updates(&stack), "0");

    // One task stops answering PING (NOAUTH): past its threshold and the
    // 1 s backoff, Swarm is asked to replace the service's tasks.
    let broken = break_task(&stack, &tasks[0]);
    let status = wait_status(
        &mut muster,
        &stack,
        port,
        "the broken task replaced",
        limit,
        |s| {
            s["services"]["cache"]["heal"]["muster_restarts"] == 1
                && all_ready(s, "cache", 2)
                && running_tasks(s, "cache")
                    .iter()
                    .all(|t| t["task_id"] != broken.as_str())
        },
    );
    assert_eq!(force_updates(&stack), "1", "one force-update");
    let heal = &status["services"]["cache"]["heal"];
    assert_eq!(heal["budget_used"], 1, "{heal}");
    assert_eq!(heal["last_restart"]["by"], "muster", "{heal}");

    // Again: the budget (1 in 10m) is used up, so the service fails with an
    // alert, Swarm is not asked again, and the dependent is degraded.
    break_task(&stack, &running_tasks(&status, "cache")[0]);
    let status = wait_status(
        &mut muster,
        &stack,
        port,
        "cache failed past its budget",
        limit,
        |s| {
            s["services"]["cache"]["state"] == "failed"
                && s["services"]["queue"]["degraded"] == true
        },
    );
    let alert = status["services"]["cache"]["heal"]["alert"]
        .as_str()
        .unwrap_or_default();
    assert!(alert.contains("restart budget exhausted"), "{alert}");
    assert!(!alert.contains("s3cret"), "{alert}");
    assert_eq!(
        status["services"]["queue"]["degraded_by"][0],
        "cache (failed)"
    );
    assert_eq!(force_updates(&stack), "1", "no replacement past the budget");
    let (code, body) = stack.http_get(port, "/readyz?verbose").expect("readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not ready: task"), "{body}");
}
