//! Loads a generated 500-service compose file with 1000 depends_on edges (load +
//! dependency graph) repeatedly and reports median / p95 time and peak heap; then a
//! service with a 100 000-key `environment` mapping (the loader must stay linear in
//! the input); also how fast and how cheaply a billion-laughs alias bomb is refused.
//!
//!     cargo bench --bench compose_load
//!
//! Targets (issue 2): under 50 ms and under 50 MB peak for the 500-service load;
//! (issue 15) the 100 000-key file well under a second.

#[path = "../tests/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use muster::compose::graph::Graph;
use muster::compose::{self, LoadOptions};
use support::bench::status_kb;

/// Counts live heap bytes and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERVICES: usize = 500;
const EDGES: usize = 1000;
const WIDE_KEYS: usize = 100_000;

/// 500 services; service i depends on two earlier ones (three for a few) = 1000 edges,
/// long form with conditions, plus the fields a real stack has.
fn generate() -> (String, usize) {
    let mut out = String::from(
        "x-common: &common\n  restart: unless-stopped\n  networks: [backend]\n  labels:\n    com.example.stack: bench\n\nservices:\n",
    );
    let mut edges = 0;
    for i in 0..SERVICES {
        let _ = writeln!(out, "  svc-{i}:");
        let _ = writeln!(out, "    <<: *common");
        let _ = writeln!(
            out,
            "    image: ${{REGISTRY:-registry.local}}/svc-{i}:${{TAG:-1.0}}"
        );
        let _ = writeln!(
            out,
            "    command: [\"serve\", \"--port\", \"{}\"]",
            8000 + i
        );
        let _ = writeln!(
            out,
            "    environment:\n      SERVICE: svc-{i}\n      REDIS_URL: redis://redis:6379"
        );
        let _ = writeln!(out, "    ports: [\"127.0.0.1:{}:8080\"]", 20000 + i);
        // i-1 and i/2 (distinct from i = 3 on; 0 for i = 2), plus 0 for i = 4..=6.
        let mut deps: Vec<usize> = Vec::new();
        if i >= 1 {
            deps.push(i - 1);
        }
        if i == 2 {
            deps.push(0);
        } else if i >= 3 {
            deps.push(i / 2);
        }
        if (4..=6).contains(&i) {
            deps.push(0);
        }
        if !deps.is_empty() {
            let _ = writeln!(out, "    depends_on:");
            for d in &deps {
                let cond = if d % 2 == 0 {
                    "service_healthy"
                } else {
                    "service_started"
                };
                let _ = writeln!(out, "      svc-{d}:\n        condition: {cond}");
                edges += 1;
            }
        }
        let _ = writeln!(
            out,
            "    healthcheck:\n      test: [\"CMD\", \"muster\", \"check\", \"--agent\", \"svc-{i}\"]\n      interval: 5s\n      timeout: 2s\n      retries: 3\n      start_period: 1m"
        );
        let _ = writeln!(
            out,
            "    x-muster:\n      probes:\n        - agent: {{ name: svc-{i} }}\n      grace: auto"
        );
    }
    out.push_str("networks:\n  backend:\n");
    (out, edges)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Runs `f` `runs` times: the sorted times and the largest heap growth of one run.
fn timed(runs: usize, mut f: impl FnMut()) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut peak = 0usize;
    for _ in 0..runs {
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let start = Instant::now();
        f();
        let elapsed = start.elapsed();
        peak = peak.max(PEAK.load(Ordering::Relaxed) - base);
        times.push(elapsed);
    }
    times.sort();
    (times, peak)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("muster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (text, edges) = generate();
    assert_eq!(edges, EDGES, "generator must produce {EDGES} edges");
    let file = dir.join("compose.yaml");
    std::fs::write(&file, &text).expect("write compose file");
    let options = LoadOptions {
        files: vec![file.clone()],
        environment: Some(Default::default()),
        working_dir: Some(dir.clone()),
        ..Default::default()
    };

    // Warm up, and check what was loaded.
    let project = compose::load(&options).expect("load");
    let graph = Graph::new(&project).expect("graph");
    assert_eq!(project.services.len(), SERVICES);
    assert_eq!(graph.edges().len(), EDGES);

    let iterations = 50;
    let (times, peak_heap) = timed(iterations, || {
        let project = compose::load(&options).expect("load");
        let graph = Graph::new(&project).expect("graph");
        std::hint::black_box((&project, &graph));
    });
    let median = percentile(&times, 0.5);
    let p95 = percentile(&times, 0.95);
    println!(
        "compose_load: {SERVICES} services, {EDGES} depends_on edges, {} KB file, {iterations} runs",
        text.len() / 1024
    );
    println!(
        "  load+graph  median {:.2} ms  p95 {:.2} ms  min {:.2} ms  (target < 50 ms)",
        median.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
    println!(
        "  peak heap during one load+graph: {:.1} MB (target < 50 MB)",
        mb(peak_heap)
    );
    if let Some(kb) = status_kb("VmHWM:") {
        println!(
            "  process peak RSS (VmHWM) so far: {:.1} MB",
            kb as f64 / 1024.0
        );
    }

    // One service with a 100 000-key environment mapping: no aliases, so never a bomb.
    let mut wide = String::from("services:\n  app:\n    image: busybox\n    environment:\n");
    for i in 0..WIDE_KEYS {
        let _ = writeln!(wide, "      KEY_{i}: value-{i}");
    }
    let wide_file = dir.join("wide.yaml");
    std::fs::write(&wide_file, &wide).expect("write wide file");
    let wide_options = LoadOptions {
        files: vec![wide_file],
        ..options.clone()
    };
    let project = compose::load(&wide_options).expect("load the 100k-key file");
    assert_eq!(project.services["app"].environment.len(), WIDE_KEYS);
    let runs = 5;
    let (wide_times, wide_peak) = timed(runs, || {
        let project = compose::load(&wide_options).expect("load the 100k-key file");
        std::hint::black_box(&project);
    });
    println!(
        "  {WIDE_KEYS}-key environment mapping ({} KB file, {runs} runs): median {:.1} ms  max {:.1} ms  peak heap {:.1} MB (target well under 1 s)",
        wide.len() / 1024,
        percentile(&wide_times, 0.5).as_secs_f64() * 1e3,
        wide_times[runs - 1].as_secs_f64() * 1e3,
        mb(wide_peak)
    );

    // A billion-laughs document: 9 levels of 9 aliases (387M nodes if expanded).
    let mut bomb = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..9 {
        let p = format!("*a{}", i - 1);
        let _ = writeln!(bomb, "a{i}: &a{i} [{}]", [p.as_str(); 9].join(","));
    }
    bomb.push_str("services:\n  lol:\n    image: x\n    command: *a8\n");
    let bomb_file = dir.join("bomb.yaml");
    std::fs::write(&bomb_file, &bomb).expect("write bomb");
    let bomb_options = LoadOptions {
        files: vec![bomb_file],
        ..options.clone()
    };
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let result = compose::load(&bomb_options);
    let elapsed = start.elapsed();
    let bomb_peak = PEAK.load(Ordering::Relaxed) - base;
    match result {
        Err(e) => println!(
            "  alias bomb refused in {:.2} ms, peak heap {:.1} MB: {e}",
            elapsed.as_secs_f64() * 1e3,
            mb(bomb_peak)
        ),
        Ok(_) => panic!("the alias bomb was accepted"),
    }
    if let Some(kb) = status_kb("VmHWM:") {
        println!(
            "  process peak RSS (VmHWM) at the end: {:.1} MB",
            kb as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
