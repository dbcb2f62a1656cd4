//! Load benchmark of the health endpoint on loopback.
//!
//! A `StateStore` holds 100 services; a task updates every service's probe
//! result (a snapshot write plus a probe observation for metrics) once per
//! second, as the supervisor does when it probes 100 services every second.
//! A load generator in the same process (its own runtime and threads) keeps
//! N keep-alive connections busy against one endpoint at a time and reports
//! throughput and latency percentiles. Server and load generator share the
//! machine's cores.
//!
//! ```sh
//! cargo bench --bench health_load                       # all endpoints, 16 connections, 10 s each
//! cargo bench --bench health_load -- --connections 32 --seconds 5 --path /readyz
//! cargo bench --bench health_load -- --serve 127.0.0.1:8688   # only serve, for wrk/oha
//! options: --server-threads N --client-threads N --services N
//!          --updates spread|burst|none (how the 100 probe results per second are written)
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use muster::compose::xmuster::ProbeRole;
use muster::health::{self, ServerOptions};
use muster::probe::ProbeOutcome;
use muster::supervisor::{ProbeObservation, ProbeReport, ServiceState, ServiceStatus, Writer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    connections: usize,
    seconds: u64,
    services: usize,
    paths: Vec<String>,
    serve: Option<String>,
    server_threads: usize,
    client_threads: usize,
    /// Probe updates: spread over the second (default), all at once, or none.
    updates: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        connections: 16,
        seconds: 10,
        services: 100,
        paths: Vec::new(),
        serve: None,
        server_threads: 2,
        client_threads: 2,
        updates: "spread".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().expect("a value after the flag");
        match a.as_str() {
            "--connections" | "-c" => args.connections = val().parse().expect("a number"),
            "--seconds" | "-d" => args.seconds = val().parse().expect("a number"),
            "--services" => args.services = val().parse().expect("a number"),
            "--path" => args.paths.push(val()),
            "--serve" => args.serve = Some(val()),
            "--server-threads" => args.server_threads = val().parse().expect("a number"),
            "--client-threads" => args.client_threads = val().parse().expect("a number"),
            "--updates" => args.updates = val(),
            _ => {} // `cargo bench` passes --bench
        }
    }
    if args.paths.is_empty() {
        args.paths = vec![
            "/readyz".into(),
            "/status".into(),
            "/readyz?verbose".into(),
            "/metrics".into(),
        ];
    }
    args
}

/// 100 services in 4 levels, ready, each with one probe and a start history.
fn populated_store(n: usize) -> Arc<Writer> {
    let store = Writer::new("bench");
    for i in 0..n {
        let name = format!("agent-{i:03}");
        let mut s = ServiceStatus::pending(name.clone());
        s.level = i % 4;
        s.depends_on = if i >= 4 {
            vec![format!("agent-{:03}", i - 4)]
        } else {
            vec![]
        };
        s.image = Some(format!("agents/agent-{i}:1.0"));
        s.container_ids = vec![format!("{:064x}", i)];
        s.grace_ms = 30_000;
        s.probes = vec![ProbeReport {
            kind: "agent".into(),
            target: format!("muster:ready:{name}"),
            role: ProbeRole::Readiness,
            last: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
        }];
        store.insert(s);
        store.transition(&name, ServiceState::Starting, "container started");
        store.transition(&name, ServiceState::Ready, "agent signalled ready");
    }
    Arc::new(store)
}

/// What the supervisor does: one probe task per service, each with a
/// period of 1 s, started 10 ms apart (so 100 services spread over the
/// second); every run writes the service's probe result into the snapshot
/// and publishes a probe observation for metrics. The heartbeat beats too.
///
/// The probe tasks stand in for the probe runner, the store's one writer:
/// they share its `Writer` (here only, to keep the load as it was).
async fn probe_every_second(store: Arc<Writer>, n: usize, burst: bool) {
    let names: Vec<String> = (0..n).map(|i| format!("agent-{i:03}")).collect();
    let run = |store: &Writer, name: &str, round: u64| {
        let outcome = ProbeOutcome::ok(Duration::from_micros(200 + round % 300), "ok");
        store.update(name, |s| {
            if let Some(p) = s.probes.first_mut() {
                p.last = Some(outcome.clone());
                p.consecutive_successes += 1;
            }
        });
        store.observe_probe(ProbeObservation {
            service: name.to_string(),
            kind: "agent".into(),
            outcome,
        });
    };
    if burst {
        // All 100 updates back to back in one task, once a second (worst case).
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut round = 0;
        loop {
            tick.tick().await;
            round += 1;
            for name in &names {
                run(&store, name, round);
            }
            store.beat();
        }
    }
    let spread = Duration::from_millis(1000 / n.max(1) as u64);
    for (i, name) in names.into_iter().enumerate() {
        let store = store.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + spread * i as u32;
            let mut tick = tokio::time::interval_at(start, Duration::from_secs(1));
            let mut round = 0;
            loop {
                tick.tick().await;
                round += 1;
                run(&store, &name, round);
                if i == 0 {
                    store.beat();
                }
            }
        });
    }
    std::future::pending::<()>().await;
}

fn start_server(args: &Args, addr: &str) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let threads = args.server_threads;
    let services = args.services;
    let updates = args.updates.clone();
    let addr = addr.to_string();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("server")
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = populated_store(services);
            match updates.as_str() {
                "none" => {}
                "burst" => drop(tokio::spawn(probe_every_second(
                    store.clone(),
                    services,
                    true,
                ))),
                _ => drop(tokio::spawn(probe_every_second(
                    store.clone(),
                    services,
                    false,
                ))),
            }
            let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let options = ServerOptions {
                liveness_window: None,
                max_connections: 4096,
                ..ServerOptions::default()
            };
            health::serve(listener, store.store(), options, std::future::pending())
                .await
                .unwrap();
        });
    });
    (rx.recv().unwrap(), handle)
}

/// Reads one response (Content-Length framed); returns false on EOF/error.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<u16> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(status)
}

struct Result_ {
    path: String,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    bytes: usize,
    latencies_us: Vec<u32>,
}

async fn connection(
    addr: SocketAddr,
    path: String,
    stop: Arc<AtomicBool>,
    measure: Arc<AtomicBool>,
) -> (Vec<u32>, usize, usize) {
    let mut lat = Vec::with_capacity(200_000);
    let mut errors = 0;
    let mut bytes = 0;
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut buf = Vec::with_capacity(64 * 1024);
    'outer: while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        while !stop.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            if stream.write_all(request.as_bytes()).await.is_err() {
                errors += 1;
                continue 'outer;
            }
            match read_response(&mut stream, &mut buf).await {
                Some(status) if status == 200 || status == 503 => {
                    if measure.load(Ordering::Relaxed) {
                        lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        bytes += buf.len();
                    }
                }
                _ => {
                    errors += 1;
                    continue 'outer;
                }
            }
        }
    }
    (lat, errors, bytes)
}

fn run_load(args: &Args, addr: SocketAddr, path: &str) -> Result_ {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("load")
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let measure = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| {
                tokio::spawn(connection(
                    addr,
                    path.to_string(),
                    stop.clone(),
                    measure.clone(),
                ))
            })
            .collect();
        // One second of warm-up (connections, caches), then measure.
        tokio::time::sleep(Duration::from_secs(1)).await;
        measure.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        measure.store(false, Ordering::Relaxed);
        let elapsed = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        let mut errors = 0;
        let mut bytes = 0;
        for t in tasks {
            let (lat, e, b) = t.await.unwrap();
            all.extend(lat);
            errors += e;
            bytes += b;
        }
        all.sort_unstable();
        Result_ {
            path: path.to_string(),
            requests: all.len(),
            errors,
            elapsed,
            bytes,
            latencies_us: all,
        }
    })
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn main() {
    let args = parse_args();
    if let Some(addr) = &args.serve {
        let (addr, handle) = start_server(&args, addr);
        println!(
            "serving {} services on http://{addr}/ (probe updates every second); Ctrl-C to stop",
            args.services
        );
        handle.join().unwrap();
        return;
    }
    let (addr, _server) = start_server(&args, "127.0.0.1:0");
    println!(
        "health_load: {} services, probe updates every second: {}, {} keep-alive connections, {} s per endpoint, server {} threads + load generator {} threads on {} cores",
        args.services,
        args.updates,
        args.connections,
        args.seconds,
        args.server_threads,
        args.client_threads,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!();
    println!("| endpoint | requests/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | avg response bytes | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for path in &args.paths {
        let r = run_load(&args, addr, path);
        let rps = r.requests as f64 / r.elapsed.as_secs_f64();
        println!(
            "| `{}` | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.path,
            rps,
            pct(&r.latencies_us, 0.50),
            pct(&r.latencies_us, 0.90),
            pct(&r.latencies_us, 0.99),
            pct(&r.latencies_us, 0.999),
            pct(&r.latencies_us, 1.0),
            r.bytes.checked_div(r.requests).unwrap_or(0),
            r.errors
        );
    }
    std::process::exit(0);
}
