//! `agent` probes on Swarm: each task of a 2-replica agent service signals
//! under its own name (`MUSTER_AGENT`, which muster sets to Swarm's
//! `{{.Task.Name}}`), pushing the protocol's ASSERT into the stack's Redis
//! with a busybox shell (`agents/agent.sh`: one EVAL in plain RESP over nc;
//! the script text is a Swarm config of `protocol/assert.lua`). muster's
//! `--redis-url redis://redis:6379` names the stack service, which muster
//! reaches at its task's overlay address. The agent service is ready only
//! after both tasks' `ready` signals, and its dependent is created (Swarm's
//! CreatedAt) only after that; `up --swarm --serve` then shows both tasks
//! ready on their own signals. Bad input: a fixed agent `name` and a signal
//! Redis muster cannot reach, each named with the service and probe.

use std::time::Duration;

use crate::supervise::{wait_status, Serving};
use crate::support::hosts::{self, SwarmStack};
use crate::support::{free_port, text};

const STACK: &str = r#"
services:
  redis:
    image: muster-test/redis:1
    x-muster:
      probes:
        - redis: { url: "redis://redis:6379" }
  agent:
    image: muster-test/busybox:1
    command: ["sh", "/agent.sh"]
    environment:
      REDIS_HOST: tasks.redis
      READY_AFTER: "4"
      MUSTER_AGENT: memory-agent
      MUSTER_NAMESPACE: NS
    configs:
      - source: script
        target: /agent.sh
      - source: assert
        target: /assert.lua
    deploy:
      replicas: 2
      placement:
        preferences:
          - spread: node.id
    depends_on:
      redis: { condition: service_healthy }
    x-muster:
      probes:
        - agent: {}
  app:
    image: muster-test/busybox:1
    command: ["sleep", "3600"]
    depends_on:
      agent: { condition: service_healthy }
configs:
  script:
    file: AGENT_SH
  assert:
    file: ASSERT_LUA
"#;

fn swarm_created_ms(stack: &SwarmStack, service: &str) -> u64 {
    let text = stack.inspect(service, "{{.CreatedAt.UnixNano}}");
    text.parse::<u64>().expect("CreatedAt") / 1_000_000
}

#[test]
fn agent_tasks_gate_their_service_each_under_its_own_task_name() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "agents");
    let dir = env!("CARGO_MANIFEST_DIR");
    // The namespace the test harness gives muster (`support::muster`).
    let ns = format!("mt{}", std::process::id());
    let yaml = STACK
        .replace("AGENT_SH", &format!("{dir}/tests/swarm/agents/agent.sh"))
        .replace("ASSERT_LUA", &format!("{dir}/protocol/assert.lua"))
        .replace("MUSTER_NAMESPACE: NS", &format!("MUSTER_NAMESPACE: {ns}"));
    let file = stack.compose_file(&yaml).to_string_lossy().to_string();
    let mut muster = stack.muster();
    muster.env("MUSTER_REDIS_URL", "redis://redis:6379");
    let out = muster.run(&[
        "-f",
        &file,
        "-p",
        &stack.name,
        "up",
        "--swarm",
        "--json",
        "--wait-timeout",
        "120s",
    ]);
    let all = text(&out);
    assert!(out.status.success(), "up --swarm failed:\n{all}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("environment.MUSTER_AGENT"),
        "the compose file's own MUSTER_AGENT is said to be replaced:\n{all}"
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
    let (redis, agent) = (service("redis"), service("agent"));
    let redis_address = redis["tasks"][0]["address"].as_str().expect("redis task");
    let agent_ready = agent["ready_at_ms"].as_u64().unwrap();

    // Each task was ready on its own signal, under its own task name, and
    // only after that signal turned `ready` (the agents wait 4 s after
    // `starting`).
    let tasks = agent["tasks"].as_array().unwrap();
    let ready: Vec<_> = tasks.iter().filter(|t| t["ready"] == true).collect();
    assert_eq!(ready.len(), 2, "{agent}");
    for t in &ready {
        let name = format!(
            "{}_agent.{}.{}",
            stack.name,
            t["slot"].as_u64().expect("slot"),
            t["task_id"].as_str().unwrap()
        );
        let probe = t["probe"].as_str().unwrap();
        assert!(
            probe.contains(&format!("agent {ns}:ready:{name}: ok")),
            "task probed on its own signal: {t}"
        );
        let value = stack.redis_cli(redis_address, &["GET", &format!("{ns}:ready:{name}")]);
        let value: serde_json::Value =
            serde_json::from_str(&value).unwrap_or_else(|e| panic!("{e}: {value:?}"));
        assert_eq!(value["status"], "ready", "{value}");
        let since = value["since"].as_u64().unwrap();
        assert!(
            agent_ready >= since,
            "agent ready at {agent_ready}, before its task {name} signalled ready at {since}"
        );
    }
    assert!(
        agent["created_at_ms"].as_u64().unwrap() >= redis["ready_at_ms"].as_u64().unwrap(),
        "{report}"
    );
    // The dependent was created (by Swarm's clock) only after the agents were ready.
    let app_created = swarm_created_ms(&stack, "app");
    assert!(
        app_created >= agent_ready,
        "app created at {app_created}, before the agent service was ready at {agent_ready}"
    );

    // Under `up --swarm --serve` the supervisor reads the same per-task
    // signals: both agent tasks ready on their own keys in /status.
    let port = free_port();
    let mut serve = stack.muster();
    serve.env("MUSTER_REDIS_URL", "redis://redis:6379");
    let mut serving = Serving(stack.serve_with(serve, &yaml, port, &[]));
    let key = format!("agent {ns}:ready:{}_agent.", stack.name);
    let status = wait_status(
        &mut serving,
        &stack,
        port,
        "both agent tasks ready under --serve",
        Duration::from_secs(90),
        |s| {
            let tasks = s["services"]["agent"]["tasks"].as_array();
            let ready = tasks.into_iter().flatten().filter(|t| {
                t["desired"] == "running"
                    && t["ready"] == true
                    && t["probe"].as_str().unwrap_or_default().contains(&key)
            });
            ready.count() == 2 && s["services"]["agent"]["state"] == "ready"
        },
    );
    assert_eq!(status["services"]["app"]["state"], "ready", "{status:#}");
    drop(serving);

    // Bad input 1: a fixed agent name cannot tell tasks apart; refused
    // before anything changes.
    let named = yaml.replace("- agent: {}", "- agent: { name: memory-agent }");
    let file2 = stack.compose_file(&named).to_string_lossy().to_string();
    let out = stack
        .muster()
        .run(&["-f", &file2, "-p", &stack.name, "up", "--swarm"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("service agent: x-muster.probes[0]")
            && shown.contains("fixed `name`")
            && shown.contains("{{.Task.Name}}"),
        "{shown}"
    );

    // Bad input 2: a signal Redis muster cannot reach: the service, the probe
    // and the URL without its password.
    drop(stack);
    let stack = SwarmStack::new(cluster.clone(), "agentsbad");
    let lone = r#"
services:
  agent:
    image: muster-test/busybox:1
    command: ["sleep", "3600"]
    x-muster:
      probes:
        - agent: {}
"#;
    let file3 = stack.compose_file(lone).to_string_lossy().to_string();
    let mut muster = stack.muster();
    muster.env("MUSTER_REDIS_URL", "redis://u:hunter2pw@127.0.0.1:1");
    let out = muster.run(&[
        "-f",
        &file3,
        "-p",
        &stack.name,
        "up",
        "--swarm",
        "--wait-timeout",
        "60s",
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("service agent: x-muster.probes[0] (agent): the signal Redis redis://u:")
            && shown.contains("127.0.0.1:1 cannot be reached from muster"),
        "{shown}"
    );
    assert!(
        !shown.contains("hunter2pw"),
        "the password is shown:\n{shown}"
    );
}
