//! Time from `up` to all-healthy for a 20-service, 4-level stack whose
//! services become healthy a fixed delay after they start, against the
//! critical-path lower bound (the largest sum of delays along a dependency
//! path). Target: within 10% + 200 ms of the bound.
//!
//! With docker-compose (v1) on the machine, the same stack also runs under
//! `docker-compose up -d` + waiting for every container to be healthy.
//!
//! Run: `cargo bench --bench up_critical_path` (env RUNS=3, COMPOSE=0 to skip compose).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/stack.rs"]
mod stack;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use muster::compose::{Condition, Project};
use muster::engine::Engine;
use muster::supervisor::start::{up, UpOptions, UpOutcome};
use muster::supervisor::StateStore;

const LEVELS: usize = 4;
const PER_LEVEL: usize = 5;
const INTERVAL_MS: u64 = 100;

/// Delay (ms) of service `i` in level `l`: varied so the critical path is not
/// simply the sum of each level's maximum.
fn delay(l: usize, i: usize) -> u64 {
    const D: [[u64; PER_LEVEL]; LEVELS] = [
        [1500, 900, 600, 1200, 300],
        [600, 1500, 900, 300, 1200],
        [1200, 300, 1500, 600, 900],
        [900, 600, 300, 1500, 1200],
    ];
    D[l][i]
}

fn name(l: usize, i: usize) -> String {
    format!("s{l}{i}")
}

/// Level l > 0 service i depends (service_healthy) on services i and i+1 of level l-1.
fn deps(l: usize, i: usize) -> Vec<(usize, usize)> {
    if l == 0 {
        Vec::new()
    } else {
        vec![(l - 1, i), (l - 1, (i + 1) % PER_LEVEL)]
    }
}

fn build(project_name: &str) -> Project {
    let mut services = Vec::new();
    for l in 0..LEVELS {
        for i in 0..PER_LEVEL {
            let mut s = stack::healthy_after(&name(l, i), delay(l, i), INTERVAL_MS);
            for (dl, di) in deps(l, i) {
                s = stack::dep(s, &name(dl, di), Condition::ServiceHealthy);
            }
            services.push(s);
        }
    }
    stack::project(project_name, services)
}

/// Longest sum of delays along a dependency path.
fn critical_path_ms() -> u64 {
    let mut best: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    for l in 0..LEVELS {
        for i in 0..PER_LEVEL {
            let before = deps(l, i).iter().map(|d| best[d]).max().unwrap_or(0);
            best.insert((l, i), before + delay(l, i));
        }
    }
    best.values().copied().max().unwrap_or(0)
}

/// Sum over levels of the level's largest delay (what level-by-level start costs).
fn level_by_level_ms() -> u64 {
    (0..LEVELS)
        .map(|l| (0..PER_LEVEL).map(|i| delay(l, i)).max().unwrap_or(0))
        .sum()
}

fn compose_yaml() -> String {
    let mut out = String::from("version: '2.4'\nservices:\n");
    for l in 0..LEVELS {
        for i in 0..PER_LEVEL {
            let d = delay(l, i);
            out.push_str(&format!(
                "  {n}:\n    image: {img}\n    command: [\"sh\", \"-c\", \"sleep {s}.{ms:03}; touch /tmp/ready; exec sleep 100000\"]\n    stop_grace_period: 1s\n    healthcheck:\n      test: [\"CMD-SHELL\", \"test -f /tmp/ready\"]\n      interval: {INTERVAL_MS}ms\n      timeout: 2s\n      retries: 30\n",
                n = name(l, i),
                img = stack::BUSYBOX,
                s = d / 1000,
                ms = d % 1000,
            ));
            let deps = deps(l, i);
            if !deps.is_empty() {
                out.push_str("    depends_on:\n");
                for (dl, di) in deps {
                    out.push_str(&format!(
                        "      {}:\n        condition: service_healthy\n",
                        name(dl, di)
                    ));
                }
            }
        }
    }
    out
}

fn stats(samples: &[Duration]) -> (f64, f64, f64) {
    let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let min = ms.iter().cloned().fold(f64::MAX, f64::min);
    let max = ms.iter().cloned().fold(0.0, f64::max);
    (mean, min, max)
}

fn main() {
    common::ensure_test_images();
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let with_compose = std::env::var("COMPOSE").map(|v| v != "0").unwrap_or(true)
        && std::path::Path::new("/usr/bin/docker-compose").exists();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = rt.block_on(Engine::connect()).expect("docker engine");
    let bound = critical_path_ms();
    let target = bound as f64 * 1.1 + 200.0;
    println!(
        "stack: {} services in {LEVELS} levels, healthcheck interval {INTERVAL_MS}ms",
        LEVELS * PER_LEVEL
    );
    println!(
        "critical-path bound: {bound} ms (level-by-level would need {} ms); target <= {target:.0} ms",
        level_by_level_ms()
    );

    let mut muster_runs = Vec::new();
    for run in 0..runs {
        let guard = common::DockerProject::new(&format!("bench{run}"));
        let project = build(&guard.name);
        let store = StateStore::new(&guard.name);
        let options = UpOptions {
            wait_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        let report = rt
            .block_on(up(&engine, &project, &options, &store))
            .expect("up");
        assert_eq!(report.outcome, UpOutcome::Ready, "{:?}", store.snapshot());
        println!(
            "muster up run {run}: {:.0} ms",
            report.elapsed.as_secs_f64() * 1000.0
        );
        muster_runs.push(report.elapsed);
        if std::env::var("VERBOSE").is_ok() {
            let snap = store.snapshot();
            let t0 = snap
                .services
                .values()
                .flat_map(|s| s.transitions.iter().map(|t| t.at_ms))
                .min()
                .unwrap_or(0);
            for s in snap.services.values() {
                let line: Vec<String> = s
                    .transitions
                    .iter()
                    .map(|t| format!("{}@{}", t.to, t.at_ms - t0))
                    .collect();
                println!("  {} {} | {}", s.name, line.join(" "), s.reason);
            }
        }
        rt.block_on(muster::supervisor::stack::down(&engine, &guard.name, true))
            .expect("down");
    }
    let (mean, min, max) = stats(&muster_runs);
    println!(
        "muster up -> all healthy: mean {mean:.0} ms (min {min:.0}, max {max:.0}); bound {bound} ms; overhead {:.0} ms ({:+.1}%); {}",
        mean - bound as f64,
        (mean / bound as f64 - 1.0) * 100.0,
        if mean <= target { "within target" } else { "OVER target" }
    );

    if with_compose {
        let mut compose_runs = Vec::new();
        for run in 0..runs {
            let guard = common::DockerProject::new(&format!("benchdc{run}"));
            let dir = common::TempDir::new("muster-bench-compose");
            std::fs::write(dir.path().join("docker-compose.yml"), compose_yaml())
                .expect("write compose file");
            let began = Instant::now();
            let status = std::process::Command::new("docker-compose")
                .current_dir(dir.path())
                .args(["-p", &guard.name, "up", "-d"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("docker-compose");
            assert!(status.success(), "docker-compose up -d failed");
            // Wait until every container reports healthy.
            loop {
                let list = rt
                    .block_on(engine.list_project_containers(&guard.name, None))
                    .expect("list");
                let healthy = list
                    .iter()
                    .filter(|c| c.health() == Some("healthy"))
                    .count();
                if healthy == LEVELS * PER_LEVEL {
                    break;
                }
                assert!(
                    began.elapsed() < Duration::from_secs(180),
                    "compose stack never healthy"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let took = began.elapsed();
            println!(
                "docker-compose up -d + wait run {run}: {:.0} ms",
                took.as_secs_f64() * 1000.0
            );
            compose_runs.push(took);
            rt.block_on(muster::supervisor::stack::down(&engine, &guard.name, true))
                .expect("down");
        }
        let (cmean, cmin, cmax) = stats(&compose_runs);
        println!(
            "docker-compose up -d -> all healthy: mean {cmean:.0} ms (min {cmin:.0}, max {cmax:.0}); overhead {:.0} ms over the bound",
            cmean - bound as f64
        );
        println!("muster is {:.2}x faster", cmean / mean);
    }
}
