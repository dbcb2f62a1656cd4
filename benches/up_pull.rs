//! `muster up` of a 10-service, 3-level stack whose images are ALL missing
//! and come from a local registry (Debian's docker-registry on a free
//! 127.0.0.1 port, started and killed by the bench). Issue 16 asks how the
//! pull and the ordered start add up: time to all-ready against the
//! sum of the slowest pull and the critical path (what "pull everything,
//! then start" costs at best), and proof that services start while an
//! unrelated image still pulls.
//!
//! Each service has its own random-data image (it does not compress) FROM
//! the busybox test image: one big one (BIG_MB, default 400) for `agent`, a
//! leaf of the last level, the others 2-64 MB. A service sleeps its delay,
//! then a Docker healthcheck (interval 100 ms) finds it ready; dependents
//! wait for `service_healthy`. Every run removes the ten images from the
//! engine first, runs `muster --json up`, reads its stdout as it comes (pull
//! events carry no time, so the bench stamps them on arrival; state events
//! carry `at_ms`), then takes the stack down.
//!
//! Run: `cargo bench --bench up_pull` (env BIG_MB, RUNS (default 3), VERBOSE=1
//! for per-service timelines).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use support::registry::{Registry, TestImage};

/// One service: name, image size in MB, readiness delay in ms, dependencies.
struct Svc {
    name: &'static str,
    mb: usize,
    delay_ms: u64,
    deps: &'static [&'static str],
}

/// `agent` gets BIG_MB instead of its `mb`.
const STACK: [Svc; 10] = [
    Svc {
        name: "db",
        mb: 64,
        delay_ms: 1500,
        deps: &[],
    },
    Svc {
        name: "cache",
        mb: 16,
        delay_ms: 500,
        deps: &[],
    },
    Svc {
        name: "queue",
        mb: 32,
        delay_ms: 1000,
        deps: &[],
    },
    Svc {
        name: "api",
        mb: 16,
        delay_ms: 1000,
        deps: &["db", "cache"],
    },
    Svc {
        name: "worker",
        mb: 8,
        delay_ms: 800,
        deps: &["queue", "db"],
    },
    Svc {
        name: "auth",
        mb: 4,
        delay_ms: 500,
        deps: &["db"],
    },
    Svc {
        name: "events",
        mb: 2,
        delay_ms: 300,
        deps: &["queue"],
    },
    Svc {
        name: "web",
        mb: 8,
        delay_ms: 700,
        deps: &["api", "auth"],
    },
    Svc {
        name: "agent",
        mb: 0,
        delay_ms: 1000,
        deps: &["api", "worker"],
    },
    Svc {
        name: "metrics",
        mb: 2,
        delay_ms: 300,
        deps: &["events", "worker"],
    },
];

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_ms_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn svc(name: &str) -> &'static Svc {
    STACK
        .iter()
        .find(|s| s.name == name)
        .expect("service in STACK")
}

/// Longest sum of readiness delays along a dependency path (no pulls).
fn critical_path_ms() -> u64 {
    fn longest(s: &Svc) -> u64 {
        s.delay_ms + s.deps.iter().map(|d| longest(svc(d))).max().unwrap_or(0)
    }
    STACK.iter().map(longest).max().unwrap_or(0)
}

fn compose_yaml(images: &BTreeMap<&str, String>) -> String {
    let mut out = String::from("services:\n");
    for s in &STACK {
        out.push_str(&format!(
            "  {n}:\n    image: {img}\n    command: [\"sh\", \"-c\", \"sleep {sec}.{ms:03}; touch /tmp/ready; exec sleep 3600\"]\n    stop_grace_period: 1s\n    healthcheck:\n      test: [\"CMD-SHELL\", \"test -f /tmp/ready\"]\n      interval: 100ms\n      timeout: 2s\n      retries: 300\n",
            n = s.name,
            img = images[s.name],
            sec = s.delay_ms / 1000,
            ms = s.delay_ms % 1000,
        ));
        if !s.deps.is_empty() {
            out.push_str("    depends_on:\n");
            for d in s.deps {
                out.push_str(&format!("      {d}:\n        condition: service_healthy\n"));
            }
        }
    }
    out
}

/// What one run saw, in ms since spawn.
#[derive(Default)]
struct Run {
    wall: f64,
    /// image -> (pull started, pull done) as the lines arrived.
    pulls: BTreeMap<String, (Option<f64>, Option<f64>)>,
    /// service -> (starting, ready) from the state events.
    states: BTreeMap<String, (Option<f64>, Option<f64>)>,
}

fn rmi(image: &str) {
    let _ = Command::new("docker")
        .args(["rmi", "-f", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `muster pull --quiet` of the whole stack (images removed first): ms.
fn pull_all(compose: &std::path::Path, images: &BTreeMap<&str, String>, run: usize) -> f64 {
    for image in images.values() {
        rmi(image);
    }
    let began = Instant::now();
    let out = support::Muster::new()
        .arg("-f")
        .arg(compose)
        .args(["-p", &format!("bupullserial{run}"), "pull", "--quiet"])
        .output()
        .expect("muster pull");
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "muster pull failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

/// `muster --json up` of the stack; `missing`: its images removed first.
fn run_once(
    compose: &std::path::Path,
    images: &BTreeMap<&str, String>,
    run: usize,
    missing: bool,
) -> Run {
    if missing {
        for image in images.values() {
            rmi(image);
        }
    }
    let guard = support::DockerProject::new(&format!("bupull{run}{}", u8::from(missing)));
    let mut muster = support::Muster::new();
    muster
        .args(["--json", "-f"])
        .arg(compose)
        .args(["-p", &guard.name, "up", "--wait-timeout", "600s"])
        .env("MUSTER_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let t0 = unix_ms_now();
    let began = Instant::now();
    let mut child = muster.spawn().expect("spawn muster up");
    let stdout = child.stdout.take().expect("stdout");
    let mut r = Run::default();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let now = began.elapsed().as_secs_f64() * 1000.0;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let (Some(event), Some(image)) = (v["event"].as_str(), v["image"].as_str()) {
            let p = r.pulls.entry(image.to_string()).or_default();
            match event {
                "started" => p.0 = Some(now),
                "done" => p.1 = Some(now),
                "failed" => panic!("pull failed: {line}"),
                _ => {}
            }
        } else if let (Some(service), Some(to), Some(at)) =
            (v["service"].as_str(), v["to"].as_str(), v["at_ms"].as_f64())
        {
            let s = r.states.entry(service.to_string()).or_default();
            match to {
                "starting" if s.0.is_none() => s.0 = Some(at - t0),
                "ready" if s.1.is_none() => s.1 = Some(at - t0),
                _ => {}
            }
        }
    }
    let status = child.wait().expect("wait for muster up");
    r.wall = began.elapsed().as_secs_f64() * 1000.0;
    assert!(status.success(), "muster up failed ({status})");
    assert_eq!(
        r.states.values().filter(|s| s.1.is_some()).count(),
        STACK.len(),
        "not every service was seen ready"
    );
    let down = support::Muster::new()
        .arg("-f")
        .arg(compose)
        .args(["-p", &guard.name, "down"])
        .output()
        .expect("muster down");
    if !down.status.success() {
        eprintln!(
            "muster down failed: {}",
            String::from_utf8_lossy(&down.stderr)
        );
    }
    r
}

/// When the last service was seen ready, ms since spawn.
fn ready_all(r: &Run) -> f64 {
    r.states
        .values()
        .filter_map(|s| s.1)
        .fold(0.0_f64, f64::max)
}

fn main() {
    let big_mb = env_num("BIG_MB", 400);
    let runs = env_num("RUNS", 3).max(1);
    let verbose = std::env::var("VERBOSE").is_ok_and(|v| v == "1");
    let registry = Registry::start();
    let tag = std::process::id();
    let mut images: BTreeMap<&str, String> = BTreeMap::new();
    let mut pushed = TestImage { names: Vec::new() };
    let total_mb: usize = STACK
        .iter()
        .map(|s| if s.name == "agent" { big_mb } else { s.mb })
        .sum();
    eprintln!("building and pushing 10 random-data images ({total_mb} MB in all) …");
    for s in &STACK {
        let mb = if s.name == "agent" { big_mb } else { s.mb };
        let local = format!("muster-test/up-pull-{}:{tag}", s.name);
        let layers = if mb >= 100 { 4 } else { 1 };
        let built = TestImage::build_random(&local, mb << 20, layers);
        let image = registry.push(&local, &format!("muster/{}:1", s.name));
        // The local copy shares the layers: gone, so a pull must fetch them.
        drop(built);
        pushed.also(&image);
        images.insert(s.name, image);
    }
    let dir = support::TempDir::new("muster-up-pull-bench");
    let compose = dir.path().join("compose.yaml");
    std::fs::write(&compose, compose_yaml(&images)).expect("write compose.yaml");
    let cp = critical_path_ms() as f64;
    let big_image = images["agent"].clone();

    let (mut walls, mut slowest, mut bounds, mut overlap, mut serial) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        // Serial: everything pulled first, then an up of present images.
        let pull_ms = pull_all(&compose, &images, run);
        let present = run_once(&compose, &images, run, false);
        let present_ms = ready_all(&present);
        eprintln!(
            "run {}: serial: muster pull {pull_ms:.0} ms, then up to all ready {present_ms:.0} ms",
            run + 1
        );
        serial.push(pull_ms + present_ms);
        let r = run_once(&compose, &images, run, true);
        // The slowest pull as it happened in this run (first start to its end).
        let (slow_image, slow_ms) = r
            .pulls
            .iter()
            .filter_map(|(i, (s, d))| Some((i.clone(), d.as_ref()? - s.as_ref()?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("pull events");
        let big_done = r.pulls.get(&big_image).and_then(|p| p.1).unwrap_or(r.wall);
        let started_during = r
            .states
            .iter()
            .filter(|(n, s)| n.as_str() != "agent" && s.0.is_some_and(|t| t < big_done))
            .count();
        let ready_during = r
            .states
            .iter()
            .filter(|(n, s)| n.as_str() != "agent" && s.1.is_some_and(|t| t < big_done))
            .count();
        let ready_all = ready_all(&r);
        eprintln!(
            "run {}: all ready at {:.0} ms (muster exited at {:.0} ms); slowest pull {} {:.0} ms (done at {:.0} ms); while the {big_mb} MB image pulled, {started_during} of 9 other services started and {ready_during} were ready",
            run + 1,
            ready_all,
            r.wall,
            slow_image.rsplit('/').next().unwrap_or(&slow_image),
            slow_ms,
            big_done,
        );
        if verbose {
            for (i, (s, d)) in &r.pulls {
                eprintln!(
                    "    pull {i}: {:?} -> {:?}",
                    s.map(|x| x as u64),
                    d.map(|x| x as u64)
                );
            }
            for (n, (s, d)) in &r.states {
                eprintln!(
                    "    {n}: starting {:?} ready {:?}",
                    s.map(|x| x as u64),
                    d.map(|x| x as u64)
                );
            }
        }
        walls.push(ready_all);
        slowest.push(slow_ms);
        bounds.push(slow_ms + cp);
        overlap.push(ready_during as f64);
    }
    let w = median(&mut walls);
    let s = median(&mut slowest);
    let b = median(&mut bounds);
    let o = median(&mut overlap);
    let sr = median(&mut serial);
    println!(
        "up of 10 services (3 levels) whose images ({total_mb} MB, largest {big_mb} MB) all come from a local registry, {runs} runs:"
    );
    println!("  critical path of readiness delays   {cp:.0} ms");
    println!("  slowest pull (median)               {s:.0} ms");
    println!("  slowest pull + critical path        {b:.0} ms");
    println!(
        "  muster up to all ready (median)     {w:.0} ms = {:.2}x of that sum",
        w / b
    );
    println!("  serial: muster pull, then up (median) {sr:.0} ms");
    println!("  services ready while the big image still pulled (median): {o:.0} of 9");
    drop(pushed);
    drop(registry);
}
