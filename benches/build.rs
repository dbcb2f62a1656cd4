//! `muster build` against `docker build` of the same context, side by side:
//! the same Dockerfile, the same classic builder (`DOCKER_BUILDKIT=0`), the
//! same `.dockerignore`, the same two image labels, run in turn (muster, docker, muster, …) so machine
//! drift hits both. Two modes: `--no-cache` (the context is sent and every
//! step runs) and cached (the context is sent, every step is a cache hit:
//! what is left is sending the context and the builder's bookkeeping).
//!
//! The context holds SIZE_MB MiB of incompressible data in 4 MiB files, plus
//! a directory of the same size that `.dockerignore` leaves out.
//!
//! Run: `cargo bench --bench build` (env RUNS=5 pairs per mode, SIZE_MB=256).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::Instant;

use support::build::{BuildStack, BUSYBOX};

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes `mib` MiB of xorshift noise into 4 MiB files under `dir`.
fn noise(stack: &BuildStack, dir: &str, mib: usize, seed: u64) {
    let mut x = seed | 1;
    for i in 0..mib.div_ceil(4) {
        let mut data = vec![0u8; 4 << 20];
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let path = stack.path().join(format!("{dir}/data{i:03}.bin"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, data).expect("write noise");
    }
}

fn timed(cmd: &mut Command) -> f64 {
    let began = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run the build");
    let secs = began.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let runs = env_or("RUNS", 5);
    let size = env_or("SIZE_MB", 256);
    let stack = BuildStack::new("benchbuild");
    stack.write(
        "app/Dockerfile",
        &format!(
            "FROM {BUSYBOX}\n{}\nCOPY . /ctx\nRUN du -sk /ctx\n",
            stack.label()
        ),
    );
    stack.write("app/.dockerignore", "skipped/\n");
    noise(&stack, "app/data", size, 0x9e37_79b9_7f4a_7c15);
    noise(&stack, "app/skipped", size, 0x2545_f491_4f6c_dd1d);
    let compose = stack.compose("services:\n  app:\n    build: ./app\n");
    let context = stack.path().join("app");
    let docker_tag = format!("{}-docker", stack.name());
    // The labels muster's build puts on the image (project and service), so
    // both builders run the same LABEL step.
    let label = format!("com.docker.compose.project={}", stack.name());
    let service_label = "com.docker.compose.service=app";

    let muster = |no_cache: bool| {
        let mut m = support::Muster::new();
        m.args([
            "-f",
            compose.to_str().expect("utf-8"),
            "build",
            "--progress",
            "quiet",
        ]);
        if no_cache {
            m.arg("--no-cache");
        }
        timed(&mut m)
    };
    let docker = |no_cache: bool| {
        let mut d = Command::new("docker");
        d.env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &docker_tag, "--label", &label])
            .args(["--label", service_label]);
        if no_cache {
            d.arg("--no-cache");
        }
        d.arg(&context);
        timed(&mut d)
    };

    println!(
        "context: {size} MiB sent + {size} MiB left out by .dockerignore; {runs} pairs per mode"
    );
    println!(
        "{:<10} {:>14} {:>14} {:>22}",
        "mode", "muster median", "docker median", "ratio median (min-max)"
    );
    for (mode, no_cache) in [("no-cache", true), ("cached", false)] {
        // Warm-up: the page cache holds the context, the cache holds the layers.
        muster(no_cache);
        docker(no_cache);
        let (mut m, mut d, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let a = muster(no_cache);
            let b = docker(no_cache);
            m.push(a);
            d.push(b);
            r.push(a / b);
        }
        let (lo, hi) = (
            r.iter().cloned().fold(f64::MAX, f64::min),
            r.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "{mode:<10} {:>12.2} s {:>12.2} s {:>10.3} ({lo:.3}-{hi:.3})",
            median(&mut m),
            median(&mut d),
            median(&mut r)
        );
    }
}
