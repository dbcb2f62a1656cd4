//! `secrets:` and `configs:` on Swarm: `up --swarm` makes each a Swarm
//! object of the stack (`<stack>_<key>`, labelled as `docker stack deploy`
//! does) and gives it to every task through Swarm, on whichever node: the
//! readiness probe of each of 3 tasks on 3 nodes reads the page its task
//! wrote from the secret (from an environment variable) and the config (from
//! a file). The secret's value is never printed; a config whose content
//! changed is refused, naming it (Swarm configs cannot change). The
//! service's `docker` probe (its healthcheck, which Swarm runs on the task's
//! node) gates it too.

use crate::support::hosts::{self, SwarmStack};
use crate::support::text;

const TOKEN: &str = "s3cr3t-token-4711";

const STACK: &str = r#"
services:
  web:
    image: muster-test/busybox:1
    command: ["sh", "-c", "mkdir -p /tmp/www && cat /run/secrets/token /etc/app.conf > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www"]
    secrets: [token]
    configs:
      - source: app
        target: /etc/app.conf
    deploy:
      replicas: 3
      placement:
        preferences:
          - spread: node.id
    healthcheck:
      test: ["CMD", "test", "-s", "/tmp/www/index.html"]
      interval: 1s
    x-muster:
      probes:
        - http: { url: "http://web:8080/", body_contains: "s3cr3t-token-4711mode=swarm" }
        - docker: {}
secrets:
  token:
    environment: WEB_TOKEN
configs:
  app:
    file: ./APP_CONF
"#;

#[test]
fn secrets_and_configs_reach_every_task_through_swarm_objects() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "secrets");
    let conf = cluster
        .manager()
        .dir
        .parent()
        .expect("cluster dir")
        .join(format!("{}-app.conf", stack.name));
    std::fs::write(&conf, "mode=swarm").expect("write the config file");
    let yaml = STACK.replace("./APP_CONF", &conf.to_string_lossy());
    let file = stack.compose_file(&yaml).to_string_lossy().to_string();
    let up = || {
        let mut m = stack.muster();
        m.env("WEB_TOKEN", TOKEN);
        m.run(&[
            "-f",
            &file,
            "-p",
            &stack.name,
            "--json",
            "up",
            "--swarm",
            "--wait-timeout",
            "120s",
        ])
    };

    // Bad input first: the secret's variable unset is refused before
    // anything is created, naming service, secret and variable.
    let out = stack.muster().run(&[
        "-f",
        &file,
        "-p",
        &stack.name,
        "up",
        "--swarm",
        "--wait-timeout",
        "120s",
    ]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(
            "service web: environment variable \"WEB_TOKEN\" required by secret \"token\" is not set"
        ),
        "{all}"
    );
    assert!(stack.services().is_empty(), "nothing was created: {all}");

    let out = up();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        !all.contains(TOKEN),
        "the secret's value was printed: {all}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    let tasks = report["services"][0]["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let nodes: std::collections::BTreeSet<&str> = tasks
        .iter()
        .filter(|t| t["ready"] == true)
        .filter_map(|t| t["node"].as_str())
        .collect();
    assert_eq!(
        nodes.len(),
        3,
        "each node's task read the secret and config: {report}"
    );
    for t in &tasks {
        let probe = t["probe"].as_str().unwrap_or_default();
        assert!(
            probe.contains("docker: running") && probe.contains("http"),
            "{t}"
        );
    }

    // Swarm objects of the stack, as `docker stack deploy` names and labels them.
    let manager = cluster.manager();
    let label = format!("label=com.docker.stack.namespace={}", stack.name);
    let secrets = manager.docker_ok(&["secret", "ls", "--filter", &label, "--format", "{{.Name}}"]);
    assert_eq!(secrets, format!("{}_token", stack.name));
    let configs = manager.docker_ok(&["config", "ls", "--filter", &label, "--format", "{{.Name}}"]);
    assert_eq!(configs, format!("{}_app", stack.name));

    // The same file again: nothing changes.
    let out = up();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["services"][0]["updated"], false, "{report}");
    assert_eq!(report["services"][0]["created"], false, "{report}");

    // The config's content changed: refused, naming the config.
    std::fs::write(&conf, "mode=other").expect("write the config file");
    let out = up();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!(
            "config {}_app exists on the swarm with other content",
            stack.name
        )),
        "{all}"
    );
    let _ = std::fs::remove_file(&conf);
}
