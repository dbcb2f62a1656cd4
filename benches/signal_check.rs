//! `muster check --agent` as a healthcheck runs it: wall time and peak RSS
//! per call of the release binary, Redis on loopback.
//!
//! cargo bench --bench signal_check   (CALLS=200 by default)

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let calls: usize = support::bench::env_num("CALLS", 200);
    let exe = env!("CARGO_BIN_EXE_muster");
    let redis = support::RedisServer::start();
    let url = redis.url();
    let dir = support::TempDir::new("muster-bench-check");
    let muster = |args: &[&str]| {
        let mut c = Command::new(exe);
        c.current_dir(dir.path())
            .env_remove("MUSTER_CONFIG")
            .args(["--redis-url", &url, "--namespace", "bench"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let ok = muster(&["signal", "ready", "--agent", "ready-agent", "--ttl", "10m"])
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = muster(&[
        "signal",
        "not-ready",
        "--agent",
        "down-agent",
        "--reason",
        "warming up",
    ])
    .status()
    .unwrap();
    assert!(ok.success());
    println!("muster check, {calls} calls each, binary {exe}");
    for (agent, want) in [("ready-agent", 0), ("down-agent", 1)] {
        // Wall time: spawn to exit, as a healthcheck pays it.
        let mut wall = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            let st = muster(&["check", "--agent", agent]).status().unwrap();
            wall.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(st.code(), Some(want));
        }
        wall.sort_by(|a, b| a.partial_cmp(b).unwrap());
        // Peak RSS per call, measured by GNU time (%M, KiB) in a separate pass.
        let mut rss = Vec::with_capacity(calls);
        for _ in 0..calls {
            let out = Command::new("/usr/bin/time")
                .args(["-f", "%M", exe])
                .current_dir(dir.path())
                .env_remove("MUSTER_CONFIG")
                .args([
                    "--redis-url",
                    &url,
                    "--namespace",
                    "bench",
                    "check",
                    "--agent",
                    agent,
                ])
                .stdout(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let kib: f64 = err
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or_else(|| panic!("no %M in {err:?}"));
            rss.push(kib / 1024.0);
        }
        rss.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "  {agent:12} exit {want}: wall median {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms | peak RSS median {:.2} MiB  max {:.2} MiB",
            pct(&wall, 0.5), pct(&wall, 0.9), pct(&wall, 0.99), wall[wall.len() - 1],
            pct(&rss, 0.5), rss[rss.len() - 1],
        );
        let median_ok = pct(&wall, 0.5) < 10.0;
        let rss_ok = rss[rss.len() - 1] < 10.0;
        println!(
            "  targets: median < 10 ms {}; peak RSS < 10 MiB {}",
            if median_ok { "MET" } else { "MISSED" },
            if rss_ok { "MET" } else { "MISSED" }
        );
    }
    std::thread::sleep(Duration::from_millis(10));
}
