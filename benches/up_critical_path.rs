//! Time from `muster up` to all-healthy for a 20-service, 4-level stack whose
//! services become healthy a fixed delay after they start, against the
//! critical-path lower bound (the largest sum of delays along a dependency
//! path). Target: within 10% + 200 ms of the bound.
//!
//! Every run is the real `muster` binary (`muster --json -f stack.yaml up`)
//! against the Docker engine; the bench times it from spawn to exit and
//! explains the time from the state events it prints and the containers'
//! `StartedAt`. Rows:
//!
//! - `probes`: each service says when it is ready through an `x-muster` http
//!   probe (period 50 ms) on its published port: the container starts
//!   `httpd` after its delay. muster's probes decide readiness.
//! - `healthcheck`: the same services with a Docker healthcheck (`test -f`,
//!   interval 100 ms) instead: the engine decides readiness.
//! - `docker-compose` (v1, when installed): the healthcheck stack under
//!   `docker-compose up -d` + waiting until every container is healthy.
//!
//! Env: RUNS (default 3) runs per row; ROWS=probes,healthcheck,compose (all by
//! default; COMPOSE=0 drops compose); STEPS=1 first measures single engine
//! operations (network create, container create, start, inspect) on their
//! own; VERBOSE=1 prints per-service timelines.
//!
//! Run: `cargo bench --bench up_critical_path`

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use muster::engine::Engine;

use support::levels::{
    critical_path_ms, delay, deps, level_by_level_ms, name, parse_name, serve_after_delay, LEVELS,
    PER_LEVEL,
};

const INTERVAL_MS: u64 = 100;
const PROBE_PERIOD_MS: u64 = 50;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Row {
    Probes,
    Healthcheck,
    Compose,
}

impl Row {
    fn label(self) -> &'static str {
        match self {
            Row::Probes => "muster up, x-muster http probes (period 50 ms)",
            Row::Healthcheck => "muster up, Docker healthchecks (interval 100 ms)",
            Row::Compose => "docker-compose up -d + wait, Docker healthchecks",
        }
    }
}

/// The stack as a compose file. Every service sleeps its delay, then writes
/// /tmp/www/index.html and serves it with busybox httpd on port 8080
/// (published on a loopback port). `probes`: an x-muster http probe on that
/// port decides readiness; otherwise a Docker healthcheck tests for the file.
fn compose_yaml(probes: bool, ports: &BTreeMap<String, u16>) -> String {
    let mut out = String::from("version: '2.4'\nservices:\n");
    for l in 0..LEVELS {
        for i in 0..PER_LEVEL {
            let n = name(l, i);
            out.push_str(&format!(
                "  {n}:\n    image: {img}\n    command: [\"sh\", \"-c\", \"{cmd}\"]\n    stop_grace_period: 1s\n    ports: [\"127.0.0.1:{port}:8080\"]\n",
                img = support::stack::BUSYBOX,
                cmd = serve_after_delay(l, i),
                port = ports[&n],
            ));
            if probes {
                out.push_str(&format!(
                    "    x-muster:\n      grace: 30s\n      probes:\n        - http: {{ url: \"http://{n}:8080/\" }}\n          period: {PROBE_PERIOD_MS}ms\n          timeout: 1s\n"
                ));
            } else {
                out.push_str(&format!(
                    "    healthcheck:\n      test: [\"CMD-SHELL\", \"test -f /tmp/www/index.html\"]\n      interval: {INTERVAL_MS}ms\n      timeout: 2s\n      retries: 30\n"
                ));
            }
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

fn unix_ms_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Per service: when muster began starting it (`starting`), when the engine
/// says its process started (`StartedAt`), when it was seen ready.
#[derive(Debug, Default, Clone)]
struct Times {
    starting: Option<f64>,
    started: Option<f64>,
    ready: Option<f64>,
}

/// One run: wall time and the per-service times (unix ms).
struct Run {
    wall: Duration,
    t0: f64,
    times: BTreeMap<String, Times>,
}

fn run_muster(engine: &Engine, rt: &tokio::runtime::Runtime, row: Row, run: usize) -> Run {
    let guard = support::DockerProject::new(&format!("bup{}{run}", row as u8));
    let dir = support::TempDir::new("muster-bench-up");
    let ports = free_ports();
    let file = dir.path().join("stack.yaml");
    std::fs::write(&file, compose_yaml(row == Row::Probes, &ports)).expect("write stack");
    // Isolated from the caller's MUSTER_* settings and any Redis on the
    // default address (see tests/support/muster.rs).
    let mut muster = support::Muster::new().dir(dir.path());
    muster
        .args(["--json", "-f"])
        .arg(&file)
        .args(["-p", &guard.name, "up", "--wait-timeout", "120s"])
        .env("MUSTER_PROBE_ADDRESS", "host")
        .stderr(Stdio::inherit());
    let t0 = unix_ms_now();
    let began = Instant::now();
    let out = muster.output().expect("run muster up");
    let wall = began.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "muster up failed ({}):\n{stdout}",
        out.status
    );
    let mut times: BTreeMap<String, Times> = BTreeMap::new();
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(service), Some(to), Some(at)) =
            (v["service"].as_str(), v["to"].as_str(), v["at_ms"].as_f64())
        else {
            continue;
        };
        let t = times.entry(service.to_string()).or_default();
        match to {
            "starting" => t.starting = Some(at),
            "ready" if t.ready.is_none() => t.ready = Some(at),
            _ => {}
        }
    }
    started_at(engine, rt, &guard.name, &mut times);
    rt.block_on(muster::supervisor::stack::down(engine, &guard.name, true))
        .expect("down");
    Run { wall, t0, times }
}

fn run_compose(engine: &Engine, rt: &tokio::runtime::Runtime, run: usize) -> Run {
    let guard = support::DockerProject::new(&format!("bupdc{run}"));
    let dir = support::TempDir::new("muster-bench-compose");
    let ports = free_ports();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        compose_yaml(false, &ports),
    )
    .expect("write compose file");
    let t0 = unix_ms_now();
    let began = Instant::now();
    let status = Command::new("docker-compose")
        .current_dir(dir.path())
        .args(["-p", &guard.name, "up", "-d"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = began.elapsed();
    let mut times = BTreeMap::new();
    started_at(engine, rt, &guard.name, &mut times);
    rt.block_on(muster::supervisor::stack::down(engine, &guard.name, true))
        .expect("down");
    Run { wall, t0, times }
}

/// One loopback port per service, below the kernel's ephemeral range: an
/// ephemeral port can be taken by an outgoing connection (muster's own
/// probes) between choosing it and the engine publishing it, which failed a
/// run with "port is already allocated". Each port is held until all are
/// chosen, so no two services get the same one.
fn free_ports() -> BTreeMap<String, u16> {
    let mut held = Vec::new();
    let mut ports = BTreeMap::new();
    let mut candidate = 20_000 + (std::process::id() % 5_000) as u16 * 2;
    for l in 0..LEVELS {
        for i in 0..PER_LEVEL {
            let listener = loop {
                candidate += 1;
                assert!(candidate < 32_000, "no free loopback port below 32000");
                if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", candidate)) {
                    break l;
                }
            };
            ports.insert(name(l, i), candidate);
            held.push(listener);
        }
    }
    ports
}

fn started_at(
    engine: &Engine,
    rt: &tokio::runtime::Runtime,
    project: &str,
    times: &mut BTreeMap<String, Times>,
) {
    let list = rt
        .block_on(engine.list_project_containers(project, None))
        .expect("list");
    for c in list {
        let d = rt
            .block_on(engine.inspect_container(&c.id))
            .expect("inspect");
        if let Some(ns) = d.started_at_ns() {
            times.entry(c.service.clone()).or_default().started = Some(ns as f64 / 1e6);
        }
    }
}

/// The chain that decided the run's length: from the service ready last, back
/// through the dependency that was ready last. Per hop: start (muster began
/// starting -> the engine started the process), the delay, detect (the
/// process was ready -> muster saw it ready), and the hand-over to the next
/// service (dependency ready -> muster began starting the dependent).
struct Chain {
    setup: f64,
    hops: Vec<(String, f64, u64, f64, f64)>,
    tail: f64,
}

fn chain(run: &Run) -> Option<Chain> {
    let ready = |n: &str| run.times.get(n).and_then(|t| t.ready);
    let last = run
        .times
        .iter()
        .filter_map(|(n, t)| t.ready.map(|r| (n.clone(), r)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?
        .0;
    let mut path = vec![last];
    loop {
        let (l, i) = parse_name(path.last()?)?;
        let prev = deps(l, i)
            .into_iter()
            .map(|(dl, di)| name(dl, di))
            .filter_map(|n| ready(&n).map(|r| (n, r)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match prev {
            Some((n, _)) => path.push(n),
            None => break,
        }
    }
    path.reverse();
    let mut hops = Vec::new();
    let first = run.times.get(&path[0])?;
    let setup = first.starting.or(first.started)? - run.t0;
    for (k, n) in path.iter().enumerate() {
        let t = run.times.get(n)?;
        let (l, i) = parse_name(n)?;
        let d = delay(l, i);
        let started = t.started?;
        let start = t.starting.map(|s| started - s).unwrap_or(0.0);
        let detect = t.ready? - (started + d as f64);
        let handover = match path.get(k + 1).and_then(|next| run.times.get(next)) {
            Some(next) => next.starting.or(next.started)? - t.ready?,
            None => 0.0,
        };
        hops.push((n.clone(), start, d, detect, handover));
    }
    let end = run.t0 + run.wall.as_secs_f64() * 1000.0;
    let tail = end - ready(path.last()?)?;
    Some(Chain { setup, hops, tail })
}

fn print_chain(run: &Run) {
    let Some(c) = chain(run) else {
        println!("    (no timeline)");
        return;
    };
    let start: f64 = c.hops.iter().map(|h| h.1).sum();
    let delays: u64 = c.hops.iter().map(|h| h.2).sum();
    let detect: f64 = c.hops.iter().map(|h| h.3).sum();
    let handover: f64 = c.hops.iter().map(|h| h.4).sum();
    let path: Vec<&str> = c.hops.iter().map(|h| h.0.as_str()).collect();
    println!(
        "    chain {}: setup {:.0} + start {:.0} + delays {} + detect {:.0} + hand-over {:.0} + exit {:.0} ms",
        path.join(">"),
        c.setup,
        start,
        delays,
        detect,
        handover,
        c.tail
    );
    let per: Vec<String> = c
        .hops
        .iter()
        .map(|(n, s, d, det, h)| {
            format!("{n}: start {s:.0}, delay {d}, detect {det:.0}, hand-over {h:.0}")
        })
        .collect();
    println!("      {}", per.join(" | "));
}

/// Every service's `detect` (its process ready -> muster saw it ready) and
/// every dependent's `hand-over` (its last dependency ready -> muster began
/// starting it), not only the critical chain's, in ms.
fn hops(run: &Run) -> (Vec<f64>, Vec<f64>) {
    let mut detect = Vec::new();
    let mut handover = Vec::new();
    for (n, t) in &run.times {
        let Some((l, i)) = parse_name(n) else {
            continue;
        };
        if let (Some(started), Some(ready)) = (t.started, t.ready) {
            detect.push(ready - (started + delay(l, i) as f64));
        }
        let deps_ready = deps(l, i)
            .into_iter()
            .map(|(dl, di)| run.times.get(&name(dl, di)).and_then(|d| d.ready))
            .collect::<Option<Vec<f64>>>();
        if let (Some(ready), Some(begin)) = (deps_ready, t.starting.or(t.started)) {
            if let Some(last) = ready.into_iter().max_by(f64::total_cmp) {
                handover.push(begin - last);
            }
        }
    }
    (detect, handover)
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn print_timeline(run: &Run) {
    for (n, t) in &run.times {
        let f = |x: Option<f64>| {
            x.map(|v| format!("{:.0}", v - run.t0))
                .unwrap_or("-".into())
        };
        println!(
            "      {n}: starting {} started {} ready {}",
            f(t.starting),
            f(t.started),
            f(t.ready)
        );
    }
}

fn summary(samples: &[Duration]) -> (f64, f64, f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let median = if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    (ms[0], median, mean, ms[ms.len() - 1])
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Single engine operations on their own: what each step of `up` costs here.
fn steps(engine: &Engine, rt: &tokio::runtime::Runtime) {
    use muster::compose::Condition;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    let guard = support::DockerProject::new("bupsteps");
    let mut services = Vec::new();
    for i in 0..PER_LEVEL * LEVELS {
        let mut s = support::stack::sh(&format!("c{i:02}"), "exec sleep 100000");
        if i >= PER_LEVEL {
            s = support::stack::dep(s, "c00", Condition::ServiceStarted);
        }
        s.ports = vec![support::stack::port(8080, support::free_port())];
        services.push(s);
    }
    let project = support::stack::project(&guard.name, services);
    let t = Instant::now();
    let net = rt
        .block_on(engine.ensure_network(&project, "default"))
        .expect("network");
    let net_ms = ms(t);
    let t = Instant::now();
    rt.block_on(engine.image_info(support::stack::BUSYBOX))
        .expect("image");
    let image_ms = ms(t);
    let spec = |i: usize| {
        let s = &project.services[&format!("c{i:02}")];
        muster::engine::translate::container_spec(&project, s, 1).expect("spec")
    };
    // Create: five one after another, then fifteen at once.
    let mut ids = Vec::new();
    let mut create_one = Vec::new();
    for i in 0..PER_LEVEL {
        let s = spec(i);
        let t = Instant::now();
        ids.push(
            rt.block_on(engine.create_container(&s.name, s.body, &s.extra_networks, None))
                .expect("create"),
        );
        create_one.push(ms(t));
    }
    let t = Instant::now();
    let more: Vec<String> = rt.block_on(futures_util::future::join_all(
        (PER_LEVEL..PER_LEVEL * LEVELS).map(|i| {
            let s = spec(i);
            async move {
                engine
                    .create_container(&s.name, s.body, &s.extra_networks, None)
                    .await
                    .expect("create")
            }
        }),
    ));
    let create_par = ms(t);
    // Start: five one after another (API call, and call -> StartedAt), then five at once.
    let mut start_call = Vec::new();
    let mut to_process = Vec::new();
    let mut inspect = Vec::new();
    for id in &ids {
        let at = unix_ms_now();
        let t = Instant::now();
        rt.block_on(engine.start_container(id)).expect("start");
        start_call.push(ms(t));
        let t = Instant::now();
        let d = rt.block_on(engine.inspect_container(id)).expect("inspect");
        inspect.push(ms(t));
        to_process.push(d.started_at_ns().unwrap_or(0) as f64 / 1e6 - at);
    }
    let t = Instant::now();
    rt.block_on(futures_util::future::join_all(
        more.iter()
            .take(PER_LEVEL)
            .map(|id| engine.start_container(id)),
    ));
    let start_par = ms(t);
    println!(
        "engine steps (docker {}, load {}):",
        engine.api_version(),
        load_average()
    );
    println!("  network create {net_ms:.0} ms ({net}); image inspect {image_ms:.1} ms");
    println!(
        "  container create: {:.0} ms each one after another (median of {}); {} at once: {create_par:.0} ms",
        median(create_one.clone()),
        create_one.len(),
        PER_LEVEL * LEVELS - PER_LEVEL
    );
    println!(
        "  container start (published port): API call {:.0} ms (median of {}), call -> process started (StartedAt) {:.0} ms; {PER_LEVEL} at once: {start_par:.0} ms",
        median(start_call.clone()),
        start_call.len(),
        median(to_process.clone())
    );
    println!("  container inspect: {:.1} ms median", median(inspect));
    // The same start, without the published port (no docker-proxy, fewer iptables rules).
    let mut plain = Vec::new();
    let mut plain_call = Vec::new();
    for i in 0..PER_LEVEL {
        let mut s = support::stack::sh(&format!("p{i:02}"), "exec sleep 100000");
        s.replicas = 1;
        let p2 = support::stack::project(&guard.name, vec![s]);
        let spec =
            muster::engine::translate::container_spec(&p2, &p2.services[&format!("p{i:02}")], 1)
                .expect("spec");
        let id = rt
            .block_on(engine.create_container(&spec.name, spec.body, &spec.extra_networks, None))
            .expect("create");
        let at = unix_ms_now();
        let t = Instant::now();
        rt.block_on(engine.start_container(&id)).expect("start");
        plain_call.push(ms(t));
        let d = rt.block_on(engine.inspect_container(&id)).expect("inspect");
        plain.push(d.started_at_ns().unwrap_or(0) as f64 / 1e6 - at);
    }
    println!(
        "  container start (no published port): API call {:.0} ms, call -> process started {:.0} ms (median of {PER_LEVEL})",
        median(plain_call),
        median(plain)
    );
    drop(guard);
}

fn main() {
    support::ensure_test_images();
    let runs: usize = support::bench::env_num("RUNS", 3);
    let compose_ok = std::env::var("COMPOSE").map(|v| v != "0").unwrap_or(true)
        && Command::new("docker-compose")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let rows: Vec<Row> = match std::env::var("ROWS") {
        Ok(list) => list
            .split(',')
            .filter_map(|r| match r.trim() {
                "probes" => Some(Row::Probes),
                "healthcheck" => Some(Row::Healthcheck),
                "compose" => Some(Row::Compose),
                _ => None,
            })
            .collect(),
        Err(_) => vec![Row::Probes, Row::Healthcheck, Row::Compose],
    }
    .into_iter()
    .filter(|r| *r != Row::Compose || compose_ok)
    .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = rt.block_on(Engine::connect()).expect("docker engine");
    if std::env::var("STEPS").is_ok_and(|v| v != "0") {
        steps(&engine, &rt);
    }
    let bound = critical_path_ms();
    let target = bound as f64 * 1.1 + 200.0;
    println!(
        "stack: {} services in {LEVELS} levels, delays 300-1500 ms; critical-path bound {bound} ms (level-by-level would need {} ms); target <= {target:.0} ms",
        LEVELS * PER_LEVEL,
        level_by_level_ms()
    );
    let verbose = std::env::var("VERBOSE").is_ok_and(|v| v != "0");
    let mut results = Vec::new();
    let mut all_detect: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut all_handover: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for row in rows {
        println!("{}:", row.label());
        let mut walls = Vec::new();
        for run in 0..runs {
            let load = load_average();
            let r = match row {
                Row::Compose => run_compose(&engine, &rt, run),
                _ => run_muster(&engine, &rt, row, run),
            };
            println!(
                "  run {run}: {:.0} ms (load {load})",
                r.wall.as_secs_f64() * 1000.0
            );
            print_chain(&r);
            let (detect, handover) = hops(&r);
            if row != Row::Compose {
                println!(
                    "      all services: detect median {:.1} ms (max {:.0}) over {}; hand-over median {:.1} ms (max {:.0}) over {}",
                    median_ms(detect.clone()),
                    detect.iter().copied().fold(f64::NAN, f64::max),
                    detect.len(),
                    median_ms(handover.clone()),
                    handover.iter().copied().fold(f64::NAN, f64::max),
                    handover.len()
                );
                all_detect.entry(row.label()).or_default().extend(detect);
                all_handover
                    .entry(row.label())
                    .or_default()
                    .extend(handover);
            }
            if verbose {
                print_timeline(&r);
            }
            walls.push(r.wall);
        }
        results.push((row, walls));
    }
    println!("summary (bound {bound} ms, target <= {target:.0} ms):");
    for (row, walls) in &results {
        let (best, median, mean, max) = summary(walls);
        println!(
            "  {:<50} best {best:.0}  median {median:.0}  mean {mean:.0}  max {max:.0} ms; median over the bound {:+.0} ms ({:+.1}%): {}",
            row.label(),
            median - bound as f64,
            (median / bound as f64 - 1.0) * 100.0,
            if median <= target { "within target" } else { "OVER target" }
        );
        if let (Some(d), Some(h)) = (all_detect.get(row.label()), all_handover.get(row.label())) {
            println!(
                "  {:<50} per hop, all runs: detect median {:.1} ms, hand-over median {:.1} ms",
                "",
                median_ms(d.clone()),
                median_ms(h.clone())
            );
        }
    }
}
