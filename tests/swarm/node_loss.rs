//! A node lost (its dockerd killed) while `muster up --swarm --serve`
//! supervises: Swarm reschedules its tasks on the other nodes; /status shows
//! the lost node's tasks with the node `down` and the rescheduled tasks
//! probed ready; /readyz, polled all along, stays 200 (the service needs 2 of
//! its 3 tasks, the other service runs on the manager). A new `up --swarm`
//! names the down node. Holds the cluster alone: other tests expect three nodes.

use std::time::{Duration, Instant};

use crate::supervise::{wait_status, Serving};
use crate::support::hosts::{self, SwarmCluster, SwarmStack};
use crate::support::{free_port, text};

const STACK: &str = r#"
services:
  cache:
    image: muster-test/redis:1
    deploy:
      replicas: 3
      placement:
        preferences:
          - spread: node.id
    x-muster:
      ready_tasks: 2
      probes:
        - redis: { url: "redis://cache:6379" }
  other:
    image: muster-test/redis:1
    deploy:
      placement:
        constraints: ["node.role == manager"]
    x-muster:
      probes:
        - redis: { url: "redis://other:6379" }
"#;

/// Restarts the lost node when the test ends (also after a failed
/// assertion), so the tests after this one have their three nodes again.
struct Revive<'a>(&'a SwarmCluster, usize);

impl Drop for Revive<'_> {
    fn drop(&mut self) {
        self.0.nodes[self.1].restart_daemon();
        hosts::wait_for_nodes_ready(self.0.manager(), self.0.nodes.len());
    }
}

/// The nodes of `service`'s tasks that Swarm wants running and that muster
/// probed ready, from /status.
fn ready_nodes(status: &serde_json::Value, service: &str) -> Vec<String> {
    status["services"][service]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["ready"] == true && t["desired"] == "running")
        .filter_map(|t| t["node"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_lost_nodes_tasks_are_rescheduled_and_probed_again_under_supervision() {
    let _only = hosts::hold_exclusive();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "loss");
    let port = free_port();
    let mut muster = Serving(stack.serve(STACK, port, &["--wait-timeout", "120s"]));
    let lost = cluster.nodes[2].hostname.clone();
    let limit = Duration::from_secs(120);
    wait_status(
        &mut muster,
        &stack,
        port,
        "3 cache tasks ready",
        limit,
        |s| ready_nodes(s, "cache").len() == 3 && ready_nodes(s, "other").len() == 1,
    );

    cluster.nodes[2].kill_daemon();
    let _revive = Revive(&cluster, 2);
    // /readyz polled from the kill until the tasks are rescheduled and probed.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut polls = 0;
    let status = loop {
        let (code, body) = stack.http_get(port, "/readyz?verbose").expect("readyz");
        assert_eq!(code, 200, "a false alarm after poll {polls}: {body}");
        polls += 1;
        let (_, body) = stack.http_get(port, "/status").expect("status");
        let status: serde_json::Value = serde_json::from_str(&body).expect("status json");
        let nodes = ready_nodes(&status, "cache");
        if nodes.len() == 3 && !nodes.contains(&lost) {
            break status;
        }
        assert!(Instant::now() < deadline, "never rescheduled: {status:#}");
        std::thread::sleep(Duration::from_millis(250));
    };
    // The transition stays visible: the lost node's task, node down.
    let tasks = status["services"]["cache"]["tasks"]
        .as_array()
        .expect("tasks");
    assert!(
        tasks
            .iter()
            .any(|t| t["node"] == lost.as_str() && t["node_state"] != "ready"),
        "the lost node's task is shown with its node down: {status:#}"
    );
    assert_eq!(status["services"]["other"]["state"], "ready");
    assert_eq!(
        status["services"]["other"]["transitions"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "no transition for the rest of the stack: {status:#}"
    );

    // A new `up --swarm` names the down node and leaves the services alone.
    let out = stack.up(STACK, None, &["--json", "--wait-timeout", "120s"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("node {lost} is down")),
        "the lost node is named:\n{all}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["manager"]["unavailable"][0]["node"], lost.as_str());
}
