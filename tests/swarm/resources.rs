//! `deploy.resources.reservations.generic_resources` on a real Swarm (issue
//! 17): `up --swarm` puts each `discrete_resource_spec` into the service's
//! TaskSpec `Resources.Reservations.GenericResources`, as `docker stack
//! deploy` does, and Swarm's scheduler honours it: no node of the test
//! cluster advertises an `fpga`, so the task stays pending and the deploy
//! does not report the service ready.

use crate::support::hosts::{self, SwarmStack};
use crate::support::text;

#[test]
fn generic_resources_are_a_swarm_reservation_the_scheduler_honours() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "generic");
    let yaml = "services:\n  fpga:\n    image: muster-test/busybox:1\n    command: [sleep, \"3600\"]\n    \
                deploy:\n      resources:\n        reservations:\n          memory: 8m\n          \
                generic_resources:\n            - discrete_resource_spec: {kind: fpga, value: 2}\n";
    let out = stack.up(yaml, None, &["--wait-timeout", "20s"]);
    let all = text(&out);
    assert_ne!(out.status.code(), Some(0), "no node has an fpga:\n{all}");
    let reserved = stack.inspect("fpga", "{{json .Spec.TaskTemplate.Resources.Reservations}}");
    let reserved: serde_json::Value = serde_json::from_str(&reserved).expect("reservations JSON");
    assert_eq!(reserved["MemoryBytes"], 8 << 20, "{reserved}");
    assert_eq!(
        reserved["GenericResources"],
        serde_json::json!([{"DiscreteResourceSpec": {"Kind": "fpga", "Value": 2}}]),
        "{reserved}"
    );
    let tasks = cluster.manager().docker_ok(&[
        "service",
        "ps",
        "--no-trunc",
        "--format",
        "{{.CurrentState}} {{.Error}}",
        &format!("{}_fpga", stack.name),
    ]);
    assert!(tasks.contains("Pending"), "{tasks}");
}
