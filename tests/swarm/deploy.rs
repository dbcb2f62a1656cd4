//! `muster up --swarm` on the real 3-node swarm: Redis + NATS + 3 agents
//! deployed in order, the agents created only once Redis answers PING and
//! NATS has JetStream (muster's probes, per task, through the overlay);
//! `docker stack rm` removes everything muster deployed.

use std::collections::BTreeSet;

use crate::support::hosts::{self, SwarmStack};
use crate::support::text;

const STACK: &str = r#"
services:
  redis:
    image: muster-test/redis:1
    container_name: the-redis
    x-muster:
      probes:
        - redis: { url: "redis://redis:6379" }
  nats:
    image: muster-test/nats:1
    x-muster:
      probes:
        - nats: { url: "nats://nats:4222", jetstream: true }
  agent:
    image: muster-test/busybox:1
    command: ["sleep", "3600"]
    deploy:
      replicas: 3
      placement:
        preferences:
          - spread: node.id
    depends_on:
      redis: { condition: service_healthy }
      nats: { condition: service_healthy }
"#;

/// Swarm's own creation time of a service (unix ms), from the manager.
fn swarm_created_ms(stack: &SwarmStack, service: &str) -> u64 {
    let text = stack.cluster.manager().docker_ok(&[
        "service",
        "inspect",
        "-f",
        "{{.CreatedAt.UnixNano}}",
        &format!("{}_{service}", stack.name),
    ]);
    text.parse::<u64>().expect("CreatedAt") / 1_000_000
}

#[test]
fn ordered_readiness_gated_deploy_across_three_nodes_then_stack_rm_removes_it() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "order");
    let out = stack.up(STACK, None, &["--json", "--wait-timeout", "120s"]);
    let all = text(&out);
    assert!(out.status.success(), "up --swarm failed:\n{all}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("service redis: `container_name` is not supported on Swarm"),
        "the ignored key is named:\n{all}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{all}"));
    let service = |name: &str| {
        report["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))
            .clone()
    };
    eprintln!(
        "up --swarm: redis + nats + 3 agents ready on {} nodes in {} ms (setup of the cluster: {:.1}s)",
        cluster.nodes.len(),
        report["elapsed_ms"],
        cluster.setup.as_secs_f64()
    );
    let (redis, nats, agent) = (service("redis"), service("nats"), service("agent"));
    assert_eq!(redis["name"], format!("{}_redis", stack.name));
    assert_eq!(
        (redis["level"].as_u64(), agent["level"].as_u64()),
        (Some(0), Some(1))
    );

    // Readiness came from muster's probes of each task at its overlay address.
    for s in [&redis, &nats] {
        let task = &s["tasks"][0];
        assert_eq!(task["ready"], true, "{s}");
        let address = task["address"].as_str().expect("task address");
        assert!(
            task["probe"].as_str().unwrap().contains(address),
            "the probe went to the task's address: {task}"
        );
    }
    assert!(nats["tasks"][0]["probe"].as_str().unwrap().contains("ok"));

    // The agents were created (by Swarm's clock) only after both probes passed.
    let gate = redis["ready_at_ms"]
        .as_u64()
        .unwrap()
        .max(nats["ready_at_ms"].as_u64().unwrap());
    let agent_created = swarm_created_ms(&stack, "agent");
    assert!(
        agent_created >= gate,
        "agent service created at {agent_created}, before its dependencies were ready at {gate}"
    );
    assert!(swarm_created_ms(&stack, "redis") <= gate);

    // Three agent tasks, ready, on three different nodes.
    let tasks = agent["tasks"].as_array().unwrap();
    let ready: Vec<_> = tasks.iter().filter(|t| t["ready"] == true).collect();
    assert_eq!(ready.len(), 3, "{agent}");
    let nodes: BTreeSet<&str> = ready.iter().map(|t| t["node"].as_str().unwrap()).collect();
    let expected: BTreeSet<&str> = cluster.nodes.iter().map(|n| n.hostname.as_str()).collect();
    assert_eq!(nodes, expected, "agents spread over the nodes");

    // Run again, for people: the services exist and are left as they are; every
    // task is shown with its node and state, and the service with its count.
    let again = stack.up(STACK, None, &[]);
    let shown = text(&again);
    assert!(again.status.success(), "{shown}");
    assert!(
        shown.contains(&format!(
            "agent: service {}_agent exists, not changed",
            stack.name
        )),
        "{shown}"
    );
    for node in &cluster.nodes {
        assert!(
            shown.contains(&format!(" on {}: running at ", node.hostname)),
            "a task line for {}:\n{shown}",
            node.hostname
        );
    }
    assert!(shown.contains("agent: ready (3/3 tasks)"), "{shown}");
    assert!(shown.contains(", ready"), "{shown}");

    // docker stack sees the stack, and `docker stack rm` removes all of it.
    let manager = cluster.manager();
    let listed = manager.docker_ok(&["stack", "services", &stack.name, "--format", "{{.Name}}"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    stack.remove_prober();
    manager.docker_ok(&["stack", "rm", &stack.name]);
    assert_eq!(stack.services(), "", "services left after stack rm");
    let label = format!("label=com.docker.stack.namespace={}", stack.name);
    let mut networks = String::new();
    for _ in 0..100 {
        networks = manager.docker_ok(&["network", "ls", "-q", "--filter", &label]);
        if networks.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(networks, "", "networks left after stack rm");
}
