//! muster's CPU per probe run per task on the 3-node test swarm
//! (`tests/support/hosts.rs`): the cost of supervising a Swarm service task
//! by task, which grows with the number of tasks.
//!
//! For each task count N: a Redis service with N replicas spread over the
//! nodes, an x-muster redis probe (period `PERIOD`, default 250 ms), under
//! `muster up --swarm --serve`. Once every task is probed ready, muster's CPU
//! time (utime + stime of its process, all threads, from /proc) and its probe
//! runs (the `_count`s of `muster_probe_duration_seconds` in /metrics) are
//! read, again after `WINDOW` seconds (default 20): CPU per probe run is the
//! ratio. It includes everything muster does meanwhile (listing the tasks
//! every poll, reading the nodes every 2 s, the state store), so it is the
//! cost of a task among N, not of the probe's network round trip alone; the
//! last line is the marginal cost (the CPU that grows with the probe runs
//! between the smallest and the largest N).
//!
//! Env: TASKS (default "3,9"), PERIOD, WINDOW.
//! Run: `cargo bench --bench swarm_probe` (release); `cargo test --bench
//! swarm_probe` builds and runs it in the dev profile.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::hosts::{SwarmCluster, SwarmStack};

/// Kills the serving muster when a run ends (also on a panic).
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stack_yaml(tasks: usize, period: &str) -> String {
    format!(
        "services:\n  cache:\n    image: muster-test/redis:1\n    deploy:\n      replicas: {tasks}\n      \
         placement:\n        preferences:\n          - spread: node.id\n    x-muster:\n      probes:\n        \
         - redis: {{ url: \"redis://cache:6379\" }}\n          period: {period}\n"
    )
}

/// Clock ticks per second (`getconf CLK_TCK`, usually 100).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid` (every thread), in seconds.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("muster's /proc stat");
    let after = stat.rsplit_once(") ").map(|(_, a)| a).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (n(11) + n(12)) / ticks
}

/// The probe runs so far: the sum of `muster_probe_duration_seconds_count`.
fn probe_runs(stack: &SwarmStack, port: u16) -> f64 {
    let (_, metrics) = stack.http_get(port, "/metrics").expect("metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("muster_probe_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn ready_tasks(stack: &SwarmStack, port: u16) -> usize {
    let Some((200, body)) = stack.http_get(port, "/status") else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["services"]["cache"]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["ready"] == true && t["desired"] == "running")
        .count()
}

/// (probe runs per second, CPU seconds per second, CPU µs per probe run).
fn measure(
    cluster: &std::sync::Arc<SwarmCluster>,
    tasks: usize,
    period: &str,
    window: Duration,
) -> (f64, f64, f64) {
    let stack = SwarmStack::new(cluster.clone(), &format!("probe{tasks}"));
    let port = support::free_port();
    let mut muster = Serving(stack.serve(
        &stack_yaml(tasks, period),
        port,
        &["--wait-timeout", "180s"],
    ));
    let pid = muster.0.id();
    let deadline = Instant::now() + Duration::from_secs(240);
    while ready_tasks(&stack, port) < tasks {
        if let Ok(Some(code)) = muster.0.try_wait() {
            panic!("muster exited ({code}) before {tasks} tasks were ready");
        }
        assert!(Instant::now() < deadline, "{tasks} tasks never ready");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Let the deploy's own work settle before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let ticks = clock_ticks();
    let (cpu0, runs0, t0) = (
        cpu_seconds(pid, ticks),
        probe_runs(&stack, port),
        Instant::now(),
    );
    std::thread::sleep(window);
    let (cpu1, runs1, t1) = (
        cpu_seconds(pid, ticks),
        probe_runs(&stack, port),
        Instant::now(),
    );
    let secs = (t1 - t0).as_secs_f64();
    let runs = runs1 - runs0;
    let cpu = cpu1 - cpu0;
    drop(muster);
    (runs / secs, cpu / secs, cpu / runs.max(1.0) * 1e6)
}

fn main() {
    let tasks: Vec<usize> = std::env::var("TASKS")
        .unwrap_or_else(|_| "3,9".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    let period = std::env::var("PERIOD").unwrap_or_else(|_| "250ms".into());
    let window = Duration::from_secs(
        std::env::var("WINDOW")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(20),
    );
    let cluster = std::sync::Arc::new(SwarmCluster::start(3));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "swarm: 3 nodes ready in {:.1} s (load {}); probe period {period}, window {} s",
        cluster.setup.as_secs_f64(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        window.as_secs()
    );
    let mut seen = Vec::new();
    for n in tasks {
        let (rate, cpu, per_run) = measure(&cluster, n, &period, window);
        seen.push((n, rate, cpu));
        println!(
            "  {n} tasks: {rate:.1} probe runs/s, muster CPU {:.2}% of a core, {per_run:.0} µs CPU per probe run ({:.3}% of a core per task)",
            cpu * 100.0,
            cpu * 100.0 / n as f64
        );
    }
    // The cost of one more task: the CPU that grows with the probe runs,
    // without what muster spends whatever the number of tasks.
    if let (Some(first), Some(last)) = (seen.first(), seen.last()) {
        if last.1 > first.1 {
            println!(
                "  marginal ({} -> {} tasks): {:.0} µs CPU per added probe run",
                first.0,
                last.0,
                (last.2 - first.2) / (last.1 - first.1) * 1e6
            );
        }
    }
}
