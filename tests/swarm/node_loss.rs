//! A node lost (its dockerd killed): Swarm reschedules its tasks on the other
//! nodes, and `muster up --swarm` says which node is down, waits for the
//! rescheduled tasks and probes them (issue 20's node-loss case, without the
//! long-running supervision, which is not done yet). Holds the cluster alone:
//! other tests expect three nodes.

use std::time::{Duration, Instant};

use crate::support::hosts::{self, SwarmCluster, SwarmStack};
use crate::support::text;

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
      probes:
        - redis: { url: "redis://cache:6379" }
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

fn ready_nodes(report: &serde_json::Value) -> Vec<String> {
    report["services"][0]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["ready"] == true)
        .filter_map(|t| t["node"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_lost_nodes_tasks_are_rescheduled_and_probed_again() {
    let _only = hosts::hold_exclusive();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "loss");
    let out = stack.up(STACK, None, &["--json", "--wait-timeout", "120s"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    let lost = &cluster.nodes[2];
    assert!(
        ready_nodes(&report).contains(&lost.hostname),
        "a task ran on {} before: {report}",
        lost.hostname
    );

    lost.kill_daemon();
    let _revive = Revive(&cluster, 2);
    let manager = cluster.manager();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status =
            manager.docker_ok(&["node", "inspect", "-f", "{{.Status.State}}", &lost.hostname]);
        if status != "ready" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} still ready 90 s after its dockerd died",
            lost.hostname
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let out = stack.up(STACK, None, &["--json", "--wait-timeout", "120s"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("node {} is down", lost.hostname)),
        "the lost node is named:\n{all}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(
        report["manager"]["unavailable"][0]["node"],
        lost.hostname.as_str()
    );
    let nodes = ready_nodes(&report);
    assert_eq!(nodes.len(), 3, "three tasks ready again: {report}");
    assert!(
        !nodes.contains(&lost.hostname),
        "no ready task on the lost node: {report}"
    );
}
