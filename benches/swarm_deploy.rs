//! Time to all-ready for the `up_critical_path` stack (20 services, 4 levels,
//! each healthy a fixed delay after it starts) on the 3-node test swarm
//! (`tests/support/hosts.rs`), against the critical-path bound:
//!
//! - `muster up --swarm`: services created in dependency order, each gated on
//!   an x-muster http probe (period 50 ms) of every task at its overlay
//!   address; timed from spawn to exit. Also muster's overhead per service:
//!   from creating the service to its task passing the probe, minus the
//!   service's own delay (scheduling, container start on vfs, probe).
//! - `docker stack deploy` + wait: the same services with a Docker
//!   healthcheck (interval 100 ms); Swarm ignores `depends_on`, so everything
//!   starts at once (not ordered: a dependent runs before what it needs).
//!   Timed until every service has a healthy task, read from each node.
//!
//! Env: RUNS (default 3). Run: `cargo bench --bench swarm_deploy`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::hosts::{SwarmCluster, SwarmStack};
use support::levels::{
    critical_path_ms, delay, deps, level_by_level_ms, name, parse_name, serve_after_delay, LEVELS,
    PER_LEVEL,
};

/// The stack for Swarm. `probes`: x-muster http probes and `depends_on`;
/// otherwise Docker healthchecks (and `depends_on` as a list, which Swarm ignores).
fn stack_yaml(probes: bool) -> String {
    let mut out = String::from("version: \"3.8\"\nservices:\n");
    for l in 0..LEVELS {
        for i in 0..PER_LEVEL {
            let n = name(l, i);
            out.push_str(&format!(
                "  {n}:\n    image: {img}\n    command: [\"sh\", \"-c\", \"{cmd}\"]\n    stop_grace_period: 1s\n",
                img = support::stack::BUSYBOX,
                cmd = serve_after_delay(l, i),
            ));
            if probes {
                out.push_str(&format!(
                    "    x-muster:\n      probes:\n        - http: {{ url: \"http://{n}:8080/\" }}\n          period: 50ms\n          timeout: 1s\n"
                ));
            } else {
                out.push_str(
                    "    healthcheck:\n      test: [\"CMD-SHELL\", \"test -f /tmp/www/index.html\"]\n      interval: 100ms\n      timeout: 2s\n      retries: 30\n",
                );
            }
            let deps = deps(l, i);
            if deps.is_empty() {
                continue;
            }
            out.push_str("    depends_on:\n");
            for (dl, di) in deps {
                // docker stack deploy's v3 schema takes only the list form (and ignores it).
                out.push_str(&match probes {
                    true => format!(
                        "      {}:\n        condition: service_healthy\n",
                        name(dl, di)
                    ),
                    false => format!("      - {}\n", name(dl, di)),
                });
            }
        }
    }
    out
}

/// One `muster up --swarm`: wall time and per-service overhead (ms).
fn run_muster(cluster: &std::sync::Arc<SwarmCluster>, run: usize) -> (Duration, Vec<f64>) {
    let stack = SwarmStack::new(cluster.clone(), &format!("bm{run}"));
    let began = Instant::now();
    let out = stack.up(
        &stack_yaml(true),
        None,
        &["--json", "--wait-timeout", "300s"],
    );
    let wall = began.elapsed();
    assert!(out.status.success(), "{}", support::text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let overhead = report["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let (l, i) = parse_name(s["service"].as_str()?)?;
            let span = s["ready_at_ms"].as_f64()? - s["created_at_ms"].as_f64()?;
            Some(span - delay(l, i) as f64)
        })
        .collect();
    (wall, overhead)
}

/// One `docker stack deploy` + wait until all 20 services have a healthy task.
fn run_stack_deploy(cluster: &std::sync::Arc<SwarmCluster>, run: usize) -> Duration {
    let stack = SwarmStack::new(cluster.clone(), &format!("bd{run}"));
    let file = stack.compose_file(&stack_yaml(false));
    let label = format!("label=com.docker.stack.namespace={}", stack.name);
    let began = Instant::now();
    let manager = cluster.manager();
    manager.docker_ok(&[
        "stack",
        "deploy",
        "-c",
        &file.to_string_lossy(),
        &stack.name,
    ]);
    let want = LEVELS * PER_LEVEL;
    loop {
        let healthy: usize = cluster
            .nodes
            .iter()
            .map(|n| {
                n.docker_ok(&["ps", "-q", "--filter", &label, "--filter", "health=healthy"])
                    .lines()
                    .count()
            })
            .sum();
        if healthy >= want {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(300),
            "only {healthy} of {want} healthy after 300 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let runs: usize = support::bench::env_num("RUNS", 3);
    let cluster = std::sync::Arc::new(SwarmCluster::start(3));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "swarm: 3 nodes ready in {:.1} s (load {})",
        cluster.setup.as_secs_f64(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "stack: {} services in {LEVELS} levels, delays 300-1500 ms; critical-path bound {} ms (level-by-level {} ms)",
        LEVELS * PER_LEVEL,
        critical_path_ms(),
        level_by_level_ms()
    );
    let mut muster = Vec::new();
    let mut overheads = Vec::new();
    let mut plain = Vec::new();
    for run in 0..runs {
        let (wall, overhead) = run_muster(&cluster, run);
        let mut o = overhead.clone();
        println!(
            "  run {run}: muster up --swarm {:.0} ms (overhead per service: median {:.0} ms)",
            wall.as_secs_f64() * 1000.0,
            median(&mut o)
        );
        muster.push(wall.as_secs_f64() * 1000.0);
        overheads.extend(overhead);
        let wall = run_stack_deploy(&cluster, run);
        println!(
            "  run {run}: docker stack deploy + wait {:.0} ms (not ordered)",
            wall.as_secs_f64() * 1000.0
        );
        plain.push(wall.as_secs_f64() * 1000.0);
    }
    println!(
        "summary: muster up --swarm median {:.0} ms (bound {} ms, {:+.0} ms); docker stack deploy + wait median {:.0} ms (ignores depends_on); muster overhead per service median {:.0} ms over {} services",
        median(&mut muster),
        critical_path_ms(),
        median(&mut muster.clone()) - critical_path_ms() as f64,
        median(&mut plain),
        median(&mut overheads),
        overheads.len()
    );
}
