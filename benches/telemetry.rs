//! Resource telemetry cost: N running containers (default 100) sampled the
//! way `supervisor/telemetry.rs` samples them every `telemetry_interval`
//! (default 5 s), through the same `Sampler`. Reports this process's CPU per
//! round and as a share of one core at a 5 s interval, for both sources: the
//! containers' cgroups (what muster uses on the engine's host) and the
//! engine's one-shot stats (the fallback; dockerd's own CPU is counted too).
//!
//!   cargo bench --bench telemetry                          # release profile
//!   cargo test --bench telemetry --profile dev -- --containers 100 --rounds 20
//!
//! The containers are muster-test/busybox:1 running `sleep` (from
//! scripts/build-test-images.sh), labelled `muster.bench=telemetry` and
//! removed at the end (also when the bench panics).
//!
//! Target: < 1 % of one core for 100 containers every 5 s.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use muster::engine::stats::Cgroups;
use muster::engine::Engine;
use muster::supervisor::telemetry::Sampler;
use muster::supervisor::{ReplicaState, ReplicaStatus, ServiceStatus, StackSnapshot};
use support::bench::{arg, cpu_ns};

const LABEL: &str = "muster.bench=telemetry";

fn dockerd_pid() -> Option<String> {
    let out = Command::new("pidof").arg("dockerd").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_string)
}

fn main() {
    let n = arg("--containers", 100);
    let rounds = arg("--rounds", 50);
    let _cleanup = support::LabelGuard(LABEL);
    let made = Instant::now();
    let mut replicas = Vec::new();
    for i in 0..n {
        let out = Command::new("docker")
            .args(["run", "-d", "--label", LABEL, "-m", "32m"])
            .args(["muster-test/busybox:1", "sleep", "100000"])
            .output()
            .expect("docker run");
        assert!(out.status.success(), "docker run: {out:?}");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        replicas.push(ReplicaStatus {
            name: format!("bench-{i}"),
            id,
            number: i as u32 + 1,
            state: ReplicaState::Running,
            since_ms: 0,
            image: None,
            exit_code: None,
            note: None,
            restarts: 0,
            oom_kills: 0,
        });
    }
    eprintln!("{n} containers started in {:.1?}", made.elapsed());
    let mut status = ServiceStatus::pending("bench");
    status.replicas = replicas;
    let snapshot = StackSnapshot {
        project: "bench".into(),
        at_ms: 0,
        services: [("bench".to_string(), status)].into_iter().collect(),
        engine: None,
        links: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = runtime.block_on(Engine::connect()).expect("engine");
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let dockerd = dockerd_pid();

    for (label, cgroups, rounds) in [
        ("cgroup", Cgroups::detect("/sys/fs/cgroup".as_ref()), rounds),
        ("engine one-shot stats", Cgroups::None, rounds.min(10)),
    ] {
        let mut sampler = Sampler::default();
        // One round first, so CPU ratios have a previous reading.
        let first = runtime.block_on(sampler.round(&engine, &cgroups, &snapshot));
        let sampled = first.services.get("bench").map_or(0, |s| s.replicas.len());
        let source = first
            .services
            .get("bench")
            .and_then(|s| s.replicas.first())
            .map(|r| format!("{:?}", r.source))
            .unwrap_or_else(|| "none".into());
        let own = cpu_ns("self");
        let engine_cpu = dockerd.as_deref().map_or(0, cpu_ns);
        let wall = Instant::now();
        for _ in 0..rounds {
            let t = runtime.block_on(sampler.round(&engine, &cgroups, &snapshot));
            assert_eq!(t.services["bench"].replicas.len(), sampled);
        }
        let wall = wall.elapsed() / rounds as u32;
        let own = Duration::from_nanos((cpu_ns("self") - own) / rounds);
        let engine_cpu =
            Duration::from_nanos((dockerd.as_deref().map_or(0, cpu_ns) - engine_cpu) / rounds);
        let share = |d: Duration| d.as_secs_f64() / 5.0 * 100.0;
        println!(
            "telemetry ({profile}) {label} [{source}]: {sampled}/{n} containers per round, {rounds} rounds; \
             muster CPU {:.2?}/round = {:.3}% of a core at 5 s; dockerd CPU {:.2?}/round = {:.3}%; wall {:.2?}/round",
            own,
            share(own),
            engine_cpu,
            share(engine_cpu),
            wall
        );
    }
}
