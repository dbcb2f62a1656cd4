//! End to end: the built `muster` binary's `config` and `graph` commands on the
//! example agent stack, and a bad file (exit code 1, message, nothing on stdout).

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::Muster;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// muster in the compose fixtures, with no `REDIS_IMAGE` for the example
/// stack's `${REDIS_IMAGE:-redis:7.2}` to pick up.
fn muster(args: &[&str]) -> Output {
    let mut cmd = Muster::new().dir(root().join("tests/fixtures/compose"));
    cmd.env_remove("REDIS_IMAGE");
    cmd.run(args)
}

fn stack() -> String {
    root().join("compose/agents.yaml").display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `muster config` prints Compose's document: top-level keys in compose-go's
/// `Project` order, a service's in `ServiceConfig` order, the healthcheck
/// as written (no defaults filled in), ports with `mode`.
#[test]
fn config_prints_compose_s_document_in_compose_s_key_order() {
    let out = muster(&["config", "-f", &stack()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let top: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('-') && !l.starts_with("x-"))
        .collect();
    assert_eq!(
        top,
        ["name: agents", "services:", "networks:", "volumes:"],
        "{text}"
    );
    let keys = |service: &str| -> Vec<String> {
        let start = text.find(&format!("\n  {service}:\n")).expect("service");
        text[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with("    "))
            .filter(|l| !l.starts_with("     ") && !l.trim_start().starts_with('-'))
            .map(|l| l.trim().split(':').next().unwrap_or_default().to_string())
            .collect()
    };
    let redis = keys("redis");
    let order = ["command", "healthcheck", "image", "networks", "ports"];
    let positions: Vec<usize> = order
        .iter()
        .filter_map(|k| redis.iter().position(|r| r == k))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "ServiceConfig order: {redis:?}"
    );
    assert!(text.contains("mode: ingress"), "ports carry mode: {text}");
    assert!(!text.contains("replicas: 1\n"), "no muster-only keys");

    let json = muster(&["config", "-f", &stack(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["services"]["tool-agent"]["deploy"]["replicas"], 2);
    assert_eq!(v["name"], "agents");
}

#[test]
fn config_model_prints_the_normalised_model_as_yaml() {
    let out = muster(&["config", "--model", "-f", &stack()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("name: agents\n"), "{text}");
    assert!(text.contains("  memory-agent:\n"));
    assert!(
        text.contains("image: redis:7.2"),
        "default from ${{REDIS_IMAGE:-redis:7.2}}"
    );
    assert!(text.contains("condition: service_healthy"));
    assert!(text.contains("start_period: 2m0s"));
    assert!(!text.contains("embedding-agent:"), "disabled by profile");
    // The YAML reads back as the same model.
    let back: muster::compose::Project = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(back.services.len(), 7);
    assert_eq!(back.disabled_services, vec!["embedding-agent"]);
}

#[test]
fn config_json_and_services() {
    let out = muster(&["config", "-f", &stack(), "--json", "--profile", "gpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "agents");
    assert_eq!(
        v["services"]["nats"]["x-muster"]["probes"][0]["nats"]["jetstream"],
        true
    );
    assert_eq!(
        v["services"]["embedding-agent"]["x-muster"]["required"],
        false
    );
    assert_eq!(v["services"]["tool-agent"]["deploy"]["replicas"], 2);

    let out = muster(&["config", "-f", &stack(), "--services"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "memory-agent\nmuster\nnats\nplanner-agent\nredis\nstream-setup\ntool-agent\n"
    );
    let out = muster(&["config", "-f", &stack(), "--services", "--json"]);
    let names: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(names.len(), 7);
}

#[test]
fn graph_prints_levels_dot_and_json() {
    let out = muster(&["graph", "-f", &stack()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "level 0: nats, redis\n\
         level 1: muster (needs redis), stream-setup (needs nats)\n\
         level 2: memory-agent (needs nats, redis, stream-setup), tool-agent (needs nats, redis, stream-setup)\n\
         level 3: planner-agent (needs memory-agent, nats, redis, stream-setup)\n"
    );
    let out = muster(&["graph", "-f", &stack(), "--dot"]);
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph \"agents\" {"), "{dot}");
    assert!(dot.contains("\"planner-agent\" -> \"memory-agent\" [label=\"healthy\"];"));
    assert!(dot.contains("\"memory-agent\" -> \"stream-setup\" [label=\"completed\"];"));
    let out = muster(&["graph", "-f", &stack(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["levels"][0], serde_json::json!(["nats", "redis"]));
    assert_eq!(v["edges"].as_array().unwrap().len(), 12);
}

#[test]
fn bad_files_exit_1_with_the_message_and_print_nothing() {
    for (args, expected) in [
        (
            vec!["config", "-f", "bad/duration.yaml"],
            "bad/duration.yaml:6:17: services.api.healthcheck.interval: invalid duration \"30 seconds\"",
        ),
        (
            vec!["graph", "-f", "bad/cycle.yaml"],
            "services.a.depends_on: dependency cycle: a -> b -> c -> a",
        ),
        (
            vec!["config", "-f", "bad/unknown-dep.yaml", "--json"],
            "depends on undefined service \"ghost\"",
        ),
    ] {
        let out = muster(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.starts_with("muster: error: "), "{err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn misspelt_field_warns_on_stderr_and_succeeds() {
    let out = muster(&["config", "--services", "-f", "bad/typo.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "api\n");
    assert!(
        stderr(&out).contains("did you mean `healthcheck`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn example_stack_is_valid_for_docker_compose_too() {
    // docker-compose v1 is part of this machine's toolchain; skip quietly where it is not.
    let Ok(out) = Command::new("docker-compose")
        .args(["-f", &stack(), "config", "--quiet"])
        .output()
    else {
        eprintln!("docker-compose not installed; skipped");
        return;
    };
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Issue #15 item 12: `config` and `graph` refuse the probe settings that
/// `up` and `status` refuse, at the same file:line:col, and print nothing.
#[test]
fn config_and_graph_refuse_probes_that_up_refuses() {
    let dir = crate::support::TempDir::new("muster-config-probe");
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  cache:\n    image: redis:7\n    x-muster:\n      probes:\n        - redis: { url: \"redis://cache:notaport\" }\n  worker:\n    image: busybox\n    x-muster:\n      probes:\n        - agent: { name: \"bad name\" }\n",
    )
    .unwrap();
    let f = file.display().to_string();
    for sub in ["config", "graph"] {
        let out = muster(&[sub, "-f", &f]);
        assert_eq!(out.status.code(), Some(1), "{sub}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{sub}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{f}:6:"))
                && err.contains("services.cache.x-muster.probes[0]")
                && err.contains("bad port \"notaport\""),
            "{sub}: {err}"
        );
    }
    // With the port fixed, the agent's name is the next refusal.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("cache:notaport", "cache:6379"),
    )
    .unwrap();
    let out = muster(&["config", "-f", &f]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{f}:11:")) && err.contains("invalid agent name"),
        "{err}"
    );
}

/// `muster config | head` style: the reader is gone before muster writes.
/// muster ends quietly with 141 (as a tool SIGPIPE ends), no panic message.
#[test]
fn a_closed_stdout_ends_quietly() {
    let mut cmd = Muster::new().dir(root().join("tests/fixtures/compose"));
    cmd.env_remove("REDIS_IMAGE");
    let mut child = cmd
        .args(["config", "--json", "-f", &stack()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

#[test]
fn config_hash_prints_compose_s_hash_per_service() {
    let out = muster(&["config", "-f", &stack(), "--hash", "redis,nats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let project = muster::compose::load(&muster::compose::LoadOptions {
        files: vec![root().join("compose/agents.yaml")],
        // The binary's environment: the process's, without REDIS_IMAGE.
        environment: Some(
            std::env::vars()
                .filter(|(k, _)| k != "REDIS_IMAGE")
                .collect(),
        ),
        working_dir: Some(root().join("tests/fixtures/compose")),
        ..Default::default()
    })
    .expect("loads");
    let want: String = ["redis", "nats"]
        .iter()
        .map(|n| {
            let h = muster::compose::hash::config_hash(&project.services[*n]);
            format!("{n} {h}\n")
        })
        .collect();
    assert_eq!(stdout(&out), want);
    let out = muster(&["--json", "config", "-f", &stack(), "--hash", "*"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v.as_object().map(|m| m.len()), Some(7), "{v}");
    let out = muster(&["config", "-f", &stack(), "--hash", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("no such service: nope"),
        "{}",
        stderr(&out)
    );
}
