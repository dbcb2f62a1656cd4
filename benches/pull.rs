//! `muster pull` against `docker pull` of the same image from a local
//! registry (Debian's docker-registry on a free loopback port): a random-data
//! image (it does not compress) of SIZE_MB (default 1024) in LAYERS (default
//! 8) layers, pulled RUNS (default 3) times by each, alternating, the engine's
//! copy removed before every pull. Prints the median wall time, throughput
//! (compressed bytes / s) and muster's peak RSS (GNU time's maximum resident
//! set size). Both ask the same dockerd, which does the download; the figure
//! shows what muster's stream handling and progress cost on top.
//!
//! Run: `cargo bench --bench pull` (env SIZE_MB, LAYERS, RUNS).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Instant;

use support::registry::{Registry, TestImage};
use support::{Muster, TempDir};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rmi(image: &str) {
    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
}

fn main() {
    let size_mb = env_num("SIZE_MB", 1024);
    let layers = env_num("LAYERS", 8);
    let runs = env_num("RUNS", 3).max(1);
    let registry = Registry::start();
    let local = format!("muster-test/pull-bench:{}", std::process::id());
    eprintln!("building a {size_mb} MB image in {layers} layers and pushing it …");
    let built = TestImage::build_random(&local, size_mb << 20, layers);
    let image = registry.push(&local, "muster/bench:1");
    drop(built);
    let _guard = TestImage {
        names: vec![image.clone()],
    };
    let dir = TempDir::new("muster-pull-bench");
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!("services:\n  big:\n    image: {image}\n"),
    )
    .expect("compose.yaml");
    let compose = dir.path().join("compose.yaml").display().to_string();
    let size_bytes = (size_mb << 20) as f64;

    let (mut muster_s, mut docker_s, mut rss_kb) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        rmi(&image);
        // muster under GNU time: its maximum resident set size.
        let rss_file = dir.path().join("rss");
        let began = Instant::now();
        let mut m = Muster::new();
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-f").arg("%M").arg("-o").arg(&rss_file);
        cmd.arg(m.get_program());
        cmd.envs(m.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
        for (k, v) in m.get_envs() {
            if v.is_none() {
                cmd.env_remove(k);
            }
        }
        if let Some(d) = m.get_current_dir() {
            cmd.current_dir(d);
        }
        let _ = &mut m;
        let out = cmd
            .args(["-f", &compose, "-p", "pullbench", "pull", "--quiet"])
            .output()
            .expect("muster pull");
        let secs = began.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "muster pull failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        muster_s.push(secs);
        let kb: f64 = std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|t| t.trim().lines().last().and_then(|l| l.trim().parse().ok()))
            .unwrap_or(0.0);
        rss_kb.push(kb);

        rmi(&image);
        let began = Instant::now();
        let out = Command::new("docker")
            .args(["pull", "-q", &image])
            .output()
            .expect("docker pull");
        let secs_docker = began.elapsed().as_secs_f64();
        assert!(out.status.success(), "docker pull failed");
        docker_s.push(secs_docker);
        eprintln!(
            "run {}: muster {secs:.2} s (peak RSS {:.1} MB), docker {secs_docker:.2} s",
            run + 1,
            kb / 1024.0
        );
    }
    let m = median(&mut muster_s);
    let d = median(&mut docker_s);
    let rss = median(&mut rss_kb) / 1024.0;
    println!("pull of a {size_mb} MB random image in {layers} layers from a local registry, {runs} runs each, alternating:");
    println!(
        "  muster pull  median {m:.2} s  {:.1} MB/s  peak RSS {rss:.1} MB",
        size_bytes / m / 1e6
    );
    println!(
        "  docker pull  median {d:.2} s  {:.1} MB/s",
        size_bytes / d / 1e6
    );
    println!(
        "  muster throughput / docker's: {:.3}x (target >= 0.95x)",
        d / m
    );
}
