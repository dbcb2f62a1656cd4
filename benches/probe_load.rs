//! Probe load benchmark: N targets (half Redis, half HTTP, on loopback) probed
//! every second through the real probe runner, state machines and state
//! store, for ~20 s. Reports CPU % of one core and RSS of this process (the
//! targets run in other processes: one redis-server, one HTTP server child),
//! and the per-probe overhead of a Redis probe on loopback.
//!
//!   cargo bench --bench probe_load                      # 1000 targets, 20 s
//!   cargo bench --bench probe_load -- --targets 200 --seconds 10
//!   cargo bench --bench probe_load -- --containers      # targets in containers
//!
//! With `--containers` the Redis and HTTP targets run in containers on a
//! Docker network the bench creates (muster-test/redis:1 from
//! scripts/build-test-images.sh; this binary's HTTP server in
//! muster-base/debian:bookworm from scripts/build-base-image.sh), so probes
//! cross a bridge instead of loopback, as when muster runs beside a stack.
//! Everything it starts is labelled `muster.bench=probe_load` and removed.
//!
//! Targets: < 5 % of one core, < 30 MB RSS, < 200 µs per Redis probe.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use muster::compose::xmuster::{HttpProbeSpec, ProbeKind, ProbeSpec, ProbeTiming, RedisProbeSpec};
use muster::probe::{build, ProbeContext, ProbeStatus};
use muster::supervisor::once::run_once;
use muster::supervisor::runner::{ProbeRunner, RunnerOptions, RunnerProbe, ServiceProbes};
use muster::supervisor::Writer;
use support::bench::{arg, cpu_split, cpu_time, status_kb, thread_stat};
use support::{free_port, KillOnDrop, LabelGuard, RedisServer};

/// Waits until something accepts connections on `addr`.
fn wait_listening(addr: &str, within: Duration) {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (VmRSS, VmHWM) in kB.
fn rss_kb() -> (u64, u64) {
    let field = |name: &str| status_kb(name).unwrap_or(0);
    (field("VmRSS:"), field("VmHWM:"))
}

/// The HTTP target: a keep-alive hyper server answering `{"status":"ok"}`.
fn serve_http(addr: &str, port: u16) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((addr, port)).await.unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"{\"status\":\"ok\"}"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn spec(kind: ProbeKind) -> ProbeSpec {
    ProbeSpec {
        kind,
        timing: ProbeTiming {
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            ..ProbeTiming::default()
        },
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-http") {
        let addr = args.get(i + 2).map_or("127.0.0.1", String::as_str);
        serve_http(addr, args[i + 1].parse().unwrap());
        return;
    }
    let targets = arg("--targets", 1000) as usize;
    let seconds = arg("--seconds", 20);
    let (redis_url, http_url, _guard) = if args.iter().any(|a| a == "--containers") {
        let stack = ContainerTargets::start();
        (
            stack.redis_url(),
            stack.http_url(),
            Guard::Containers(stack),
        )
    } else {
        let (redis, http, guards) = loopback_targets();
        (redis, http, Guard::Processes(guards))
    };
    run(targets, seconds, &redis_url, &http_url);
}

/// What the targets' lifetime is tied to.
#[allow(dead_code)] // held for its Drop
enum Guard {
    Processes((RedisServer, KillOnDrop)),
    Containers(ContainerTargets),
}

/// redis-server and the HTTP server as child processes on loopback.
fn loopback_targets() -> (String, String, (RedisServer, KillOnDrop)) {
    // The runner holds one connection per Redis target.
    let redis = RedisServer::start_with(&["--maxclients", "20000"]);
    let http_port = free_port();
    let http = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["--serve-http", &http_port.to_string()])
            .spawn()
            .expect("http child"),
    );
    wait_listening(&format!("127.0.0.1:{http_port}"), Duration::from_secs(5));
    (
        redis.url(),
        format!("http://127.0.0.1:{http_port}/health"),
        (redis, http),
    )
}

const BENCH_LABEL: &str = "muster.bench=probe_load";

/// The targets in containers on a network of their own; removed on drop.
struct ContainerTargets {
    redis_ip: String,
    http_ip: String,
    _cleanup: LabelGuard,
}

fn docker(args: &[&str]) -> String {
    support::docker(args).trim().to_string()
}

/// `docker run -d` a labelled container `name` on `network` with `args`
/// (options, image, command); its IP address there.
fn run_on(network: &str, name: &str, args: &[&str]) -> String {
    let head = [
        "run",
        "-d",
        "--label",
        BENCH_LABEL,
        "--network",
        network,
        "--name",
        name,
    ];
    docker(&[&head[..], args].concat());
    docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        name,
    ])
}

impl ContainerTargets {
    fn start() -> ContainerTargets {
        let id = std::process::id();
        let network = format!("muster-bench-{id}");
        docker(&["network", "create", "--label", BENCH_LABEL, &network]);
        let cleanup = LabelGuard(BENCH_LABEL);
        let redis_ip = run_on(
            &network,
            &format!("muster-bench-redis-{id}"),
            &[
                "muster-test/redis:1",
                "/usr/bin/redis-server",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "20000",
            ],
        );
        let mount = format!("{}:/bench:ro", std::env::current_exe().unwrap().display());
        let http_ip = run_on(
            &network,
            &format!("muster-bench-http-{id}"),
            &[
                "-v",
                &mount,
                "muster-base/debian:bookworm",
                "/bench",
                "--serve-http",
                "8080",
                "0.0.0.0",
            ],
        );
        wait_listening(&format!("{redis_ip}:6379"), Duration::from_secs(10));
        wait_listening(&format!("{http_ip}:8080"), Duration::from_secs(10));
        ContainerTargets {
            redis_ip,
            http_ip,
            _cleanup: cleanup,
        }
    }

    fn redis_url(&self) -> String {
        format!("redis://{}:6379", self.redis_ip)
    }

    fn http_url(&self) -> String {
        format!("http://{}:8080/health", self.http_ip)
    }
}

fn run(targets: usize, seconds: u64, redis_url: &str, http_url: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Per-probe overhead: one Redis probe, checked back to back.
        let redis_spec = || {
            spec(ProbeKind::Redis(RedisProbeSpec {
                url: redis_url.to_string(),
                require: vec![],
                role: None,
                replication_link_up: false,
                key_exists: None,
                ca_file: None,
                cert_file: None,
                key_file: None,
            }))
        };
        let mut one = build(&redis_spec(), &ProbeContext::default()).unwrap();
        for _ in 0..200 {
            run_once(one.as_mut(), Duration::from_secs(1)).await;
        }
        let n = 5000;
        let mut lat = Vec::with_capacity(n);
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        for _ in 0..n {
            let o = run_once(one.as_mut(), Duration::from_secs(1)).await;
            assert_eq!(o.status, ProbeStatus::Ok, "{o:?}");
            lat.push(o.latency);
        }
        let wall = t0.elapsed();
        let cpu = cpu_time() - cpu0;
        lat.sort();
        let mean = lat.iter().sum::<Duration>() / n as u32;
        println!(
            "redis probe against {redis_url} (PING + INFO persistence, one pipelined round trip), {n} checks back to back:"
        );
        println!(
            "  latency mean {:?}, p50 {:?}, p99 {:?}; wall per check {:?}; muster CPU per check {:?}",
            mean,
            lat[n / 2],
            lat[n * 99 / 100],
            wall / n as u32,
            cpu / n as u32
        );
        drop(one);

        // The load: `targets` services, one probe each, every second.
        let writer = Writer::new("bench");
        let store = writer.store();
        let mut services = Vec::with_capacity(targets);
        for i in 0..targets {
            let s = if i % 2 == 0 {
                redis_spec()
            } else {
                spec(ProbeKind::Http(HttpProbeSpec {
                    url: http_url.to_string(),
                    method: None,
                    status: None,
                    body_contains: None,
                    json: Some(muster::compose::xmuster::JsonMatch {
                        pointer: "/status".into(),
                        equals: serde_json::json!("ok"),
                    }),
                    headers: Default::default(),
                    ca_file: None,
                    cert_file: None,
                    key_file: None,
                }))
            };
            let probe = build(&s, &ProbeContext::default()).unwrap();
            services.push(ServiceProbes {
                service: format!("svc{i:04}"),
                required: true,
                grace: Duration::from_secs(5),
                probes: vec![RunnerProbe {
                    timing: s.timing.clone(),
                    probe,
                }],
            });
        }
        // A metrics follower, as the health server will have.
        let mut runs = store.probe_runs();
        let all_runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = {
            let all_runs = all_runs.clone();
            tokio::spawn(async move {
                let mut counts = [0u64; 3];
                let mut lat_sum = [Duration::ZERO; 2];
                while let Ok(obs) = runs.recv().await {
                    all_runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let k = usize::from(obs.kind == "http");
                    if obs.outcome.is_ok() {
                        counts[k] += 1;
                        lat_sum[k] += obs.outcome.latency;
                    } else {
                        counts[2] += 1;
                    }
                }
                (counts, lat_sum)
            })
        };
        let (rss_before, _) = rss_kb();
        let runner = ProbeRunner::spawn(
            writer,
            services,
            RunnerOptions {
                start_all: true,
                ..RunnerOptions::default()
            },
        );
        // Warm up: every probe connects once.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let ready_after_warmup = store.snapshot().count_in(muster::supervisor::ServiceState::Ready);
        let runs0 = all_runs.load(std::sync::atomic::Ordering::Relaxed);
        let probe_thread = thread_stat("muster-probes");
        let split = || {
            let (pu, ps) = cpu_split("/proc/self/stat");
            let (tu, ts) = probe_thread.as_deref().map_or((Duration::ZERO, Duration::ZERO), cpu_split);
            (pu, ps, tu, ts)
        };
        let split0 = split();
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        let mut max_rss = 0;
        for _ in 0..seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            max_rss = max_rss.max(rss_kb().0);
        }
        let wall = t0.elapsed();
        let cpu = cpu_time() - cpu0;
        let split1 = split();
        let window_runs = all_runs.load(std::sync::atomic::Ordering::Relaxed) - runs0;
        let snap = store.snapshot();
        let ready = snap.count_in(muster::supervisor::ServiceState::Ready);
        runner.stop();
        drop(store);
        let (counts, lat_sum) = tokio::time::timeout(Duration::from_secs(2), counter)
            .await
            .map(|r| r.unwrap())
            .unwrap_or(([0; 3], [Duration::ZERO; 2]));
        let (rss_end, hwm) = rss_kb();
        let total_runs = counts[0] + counts[1] + counts[2];
        println!(
            "{targets} targets ({} redis at {redis_url}, {} http at {http_url}) every 1s through the runner, measured {:.1}s after a 3s warm-up:",
            targets.div_ceil(2),
            targets / 2
        , wall.as_secs_f64());
        println!(
            "  CPU {:.2}% of one core ({:?} CPU in {:.1}s); RSS max {:.1} MB (before probes {:.1} MB, end {:.1} MB, peak {:.1} MB)",
            cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
            cpu,
            wall.as_secs_f64(),
            max_rss as f64 / 1024.0,
            rss_before as f64 / 1024.0,
            rss_end as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        println!(
            "  probe runs {total_runs} in all (ok redis {}, ok http {}, failed {}), {window_runs} while measured; CPU per probe run {:?}; mean latency redis {:?}, http {:?}",
            counts[0],
            counts[1],
            counts[2],
            if window_runs > 0 { cpu / window_runs as u32 } else { Duration::ZERO },
            if counts[0] > 0 { lat_sum[0] / counts[0] as u32 } else { Duration::ZERO },
            if counts[1] > 0 { lat_sum[1] / counts[1] as u32 } else { Duration::ZERO },
        );
        let pct = |d: Duration| d.as_secs_f64() / wall.as_secs_f64() * 100.0;
        println!(
            "  process user {:.2}% + system {:.2}%; of which the probe thread user {:.2}% + system {:.2}%",
            pct(split1.0 - split0.0),
            pct(split1.1 - split0.1),
            pct(split1.2 - split0.2),
            pct(split1.3 - split0.3)
        );
        println!("  services ready: {ready}/{targets} (after warm-up {ready_after_warmup})");
    });
}
