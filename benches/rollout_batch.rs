//! What one rollout batch costs beyond the waits the operator chose: a
//! 3-replica busybox httpd service is rolled back and forth between two
//! images with `--monitor 0s --drain 0s` and `stop_signal: SIGKILL`, so every
//! millisecond left is muster's own work and the engine's (create, start,
//! readiness, join the DNS name, leave it, stop, remove). Each batch's phases
//! come from the `--json` events' timestamps.
//!
//! Two readiness bases: `running` (no check) and an x-muster http probe
//! (period 100ms) pointed at each new container.
//!
//! Run: `cargo bench --bench rollout_batch` (env RUNS=4 rollouts per basis).

#[path = "../tests/support/mod.rs"]
mod support;

use support::rollout::{Env, V1, V2};

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[derive(Default)]
struct Phases {
    batch: Vec<u64>,
    create: Vec<u64>,
    ready: Vec<u64>,
    join: Vec<u64>,
    retire: Vec<u64>,
    total: Vec<u64>,
}

fn measure(label: &str, probes: bool, runs: usize) {
    let env = Env::new(&format!("benchroll{}", if probes { "p" } else { "r" }));
    env.write(
        "compose.yaml",
        &format!(
            "services:\n  web:\n    image: {V1}\n    deploy:\n      replicas: 3\n    stop_signal: SIGKILL\n"
        ),
    );
    env.write(
        "probes.yaml",
        "services:\n  web:\n    x-muster:\n      probes:\n        - http: { url: \"http://web:8080/healthz\" }\n          period: 100ms\n",
    );
    env.up(&["compose.yaml"]);
    let files: Vec<&str> = if probes {
        vec!["compose.yaml", "probes.yaml"]
    } else {
        vec!["compose.yaml"]
    };
    let mut p = Phases::default();
    for run in 0..runs {
        let image = if run % 2 == 0 { V2 } else { V1 };
        let out = env
            .muster(&files)
            .args([
                "--json",
                "rollout",
                "web",
                "--image",
                image,
                "--monitor",
                "0s",
                "--drain",
                "0s",
                // A 0s monitor is below what the probe needs to fail once;
                // the guard rail is not what is measured here.
                "--force",
            ])
            .output()
            .expect("run muster");
        assert!(
            out.status.success(),
            "rollout failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &serde_json::Value| e.get("event").is_some())
            .collect();
        let at = |e: &serde_json::Value| e["at_ms"].as_u64().unwrap();
        let first = events
            .iter()
            .find(|e| e["event"] == "plan")
            .map(at)
            .unwrap();
        let done = events
            .iter()
            .find(|e| e["event"] == "done")
            .map(at)
            .unwrap();
        p.total.push(done - first);
        // Split at each batch event.
        let starts: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["event"] == "batch")
            .map(|(i, _)| i)
            .collect();
        for (n, &s) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(events.len() - 1);
            let slice = &events[s..=end];
            let t = |kind: &str| slice.iter().find(|e| e["event"] == kind).map(at);
            let last_removed = slice
                .iter()
                .filter(|e| e["event"] == "removed")
                .map(at)
                .max();
            let (Some(b), Some(c), Some(r), Some(j), Some(u), Some(x)) = (
                t("batch"),
                t("created"),
                t("ready"),
                t("joined"),
                t("unpublished"),
                last_removed,
            ) else {
                continue;
            };
            p.batch.push(x - b);
            p.create.push(c - b);
            p.ready.push(r - c);
            p.join.push(j - r);
            p.retire.push(x - u);
        }
    }
    println!(
        "{label:<22} {:>7} {:>9} {:>9} {:>8} {:>11} {:>8} {:>9}",
        p.batch.len(),
        median(&mut p.batch),
        p.batch.iter().max().unwrap(),
        median(&mut p.create),
        median(&mut p.ready),
        median(&mut p.join),
        median(&mut p.retire),
    );
    println!(
        "{:<22} rollout of 3 replicas, median {} ms",
        "",
        median(&mut p.total)
    );
}

fn main() {
    let runs: usize = support::bench::env_num("RUNS", 4);
    println!("rollout_batch: {runs} rollouts of 3 replicas per readiness basis, parallelism 1, monitor 0s, drain 0s");
    println!(
        "{:<22} {:>7} {:>9} {:>9} {:>8} {:>11} {:>8} {:>9}",
        "basis", "batches", "batch p50", "batch max", "create", "start+ready", "join", "retire"
    );
    measure("running", false, runs);
    measure("x-muster http probe", true, runs);
    println!("(ms; create = batch start -> container created, start+ready = created -> started and ready, join = ready -> in the DNS name, retire = old container leaves the name -> removed)");
}
