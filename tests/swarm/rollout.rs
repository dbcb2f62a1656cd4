//! `muster rollout SERVICE --image REF --swarm`: Swarm's rolling update, ready
//! only when muster's probes pass on the new tasks; an image whose tasks never
//! answer is rolled back by Swarm, on muster's request, to the previous one.

use crate::support::hosts::{self, SwarmStack};
use crate::support::text;

const STACK: &str = r#"
services:
  cache:
    image: muster-test/redis:1
    deploy:
      replicas: 2
      update_config: { parallelism: 1, order: start-first }
    x-muster:
      probes:
        - redis: { url: "redis://cache:6379" }
"#;

fn image(stack: &SwarmStack) -> String {
    stack.inspect("cache", "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
}

#[test]
fn a_rollout_waits_for_probes_and_a_bad_image_is_rolled_back_by_swarm() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "roll");
    let out = stack.up(STACK, None, &["--wait-timeout", "120s"]);
    assert!(out.status.success(), "{}", text(&out));
    for node in &cluster.nodes {
        node.docker_ok(&["tag", "muster-test/redis:1", "muster-test/redis:2"]);
    }
    let file = stack.compose_file(STACK);
    let file = file.to_string_lossy().to_string();
    let rollout = |image: &str, extra: &[&str]| {
        let mut args = vec![
            "-f",
            &file,
            "-p",
            &stack.name,
            "rollout",
            "cache",
            "--image",
            image,
            "--swarm",
        ];
        args.extend(extra);
        stack.muster().run(&args)
    };

    // A good image: every new task is probed ready before muster says so.
    let out = rollout(
        "muster-test/redis:2",
        &["--json", "--progress-deadline", "90s"],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["from_image"], "muster-test/redis:1");
    let ready: Vec<_> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["ready"] == true)
        .collect();
    assert_eq!(ready.len(), 2, "{report}");
    for t in ready {
        assert_eq!(t["image"], "muster-test/redis:2", "{t}");
        assert!(t["probe"].as_str().unwrap().contains("ok"), "{t}");
    }
    assert_eq!(image(&stack), "muster-test/redis:2");

    // A bad image (busybox: no Redis ever answers): rolled back by Swarm.
    let out = rollout("muster-test/busybox:1", &["--progress-deadline", "15s"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("service cache: image muster-test/busybox:1 was not ready within 15s"),
        "{all}"
    );
    assert!(
        all.contains(
            "asked Swarm to roll back to muster-test/redis:2: 2 of its tasks are ready again"
        ),
        "{all}"
    );
    assert_eq!(image(&stack), "muster-test/redis:2", "Swarm rolled back");
}
