//! 1000 agents heartbeating every second for 20 s: CPU the AgentWatcher
//! spends, measured in a child process of its own (the agents run in this
//! process). Two loads: (a) plain heartbeats (TTL refreshes, the steady
//! state), (b) every agent also changes its meta every second, so
//! each heartbeat is an event the watcher must apply (the worst case).
//!
//! cargo bench --bench signal_load   (AGENTS=1000 SECONDS=20)

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use muster::signal::{AgentWatcher, Client, ClientOptions, WatcherConfig};
use support::bench::cpu_ns;

fn watcher_child(url: String, ns: String, expect: usize, secs: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let w = AgentWatcher::start(WatcherConfig::new(url, ns)).unwrap();
        assert!(w.wait_subscribed(Duration::from_secs(5)).await);
        // Wait until every agent is known, then measure a steady window.
        let t = Instant::now();
        while w
            .snapshot()
            .values()
            .filter(|v| v.readiness.status() != "not_ready")
            .count()
            < expect
        {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "agents never all showed up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut changes = w.changes();
        let counter = tokio::spawn(async move {
            let mut n = 0u64;
            while changes.recv().await.is_ok() {
                n += 1;
            }
            n
        });
        let cpu0 = cpu_ns("self");
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let cpu = cpu_ns("self") - cpu0;
        let wall = t0.elapsed();
        counter.abort();
        let known = w.snapshot().len();
        println!("{} {} {}", cpu, wall.as_nanos(), known);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--watcher-child") {
        watcher_child(
            args[2].clone(),
            args[3].clone(),
            args[4].parse().unwrap(),
            args[5].parse().unwrap(),
        );
        return;
    }
    let agents: usize = support::bench::env_num("AGENTS", 1000);
    let secs: u64 = support::bench::env_num("SECONDS", 20);
    let redis = support::RedisServer::start();
    let url = redis.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("{agents} agents heartbeating every 1 s (TTL 2 s), watcher measured over {secs} s");
    for (label, changing) in [
        ("heartbeats only", false),
        ("heartbeat + a changed value each second", true),
    ] {
        let ns = if changing { "load-b" } else { "load-a" };
        // 20 clients (connections) x agents/20 agents each.
        let clients: Vec<Client> = rt.block_on(async {
            let mut v = Vec::new();
            for _ in 0..20 {
                let opts = ClientOptions {
                    namespace: ns.into(),
                    ttl: Duration::from_secs(2),
                    ..Default::default()
                };
                v.push(Client::connect_with(&url, opts).await.unwrap());
            }
            for i in 0..agents {
                v[i % 20]
                    .mark_ready(&format!("agent-{i}"), &[("bench", "1")])
                    .await
                    .unwrap();
            }
            v
        });
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--watcher-child",
                &url,
                ns,
                &agents.to_string(),
                &secs.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The changing load: every agent re-sends ready with a new meta value each second
        // (the heartbeat at TTL/2 = 1 s keeps the rest alive).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let driver = if changing {
            let clients = clients.clone();
            let stop = stop.clone();
            Some(rt.spawn(async move {
                let mut tick = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let t = Instant::now();
                    for i in 0..agents {
                        let _ = clients[i % 20]
                            .mark_ready_meta(
                                &format!("agent-{i}"),
                                serde_json::json!({"tick": tick})
                                    .as_object()
                                    .unwrap()
                                    .clone(),
                            )
                            .await;
                    }
                    tick += 1;
                    tokio::time::sleep(Duration::from_secs(1).saturating_sub(t.elapsed())).await;
                }
            }))
        } else {
            None
        };
        let out = child.wait_with_output().unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(d) = driver {
            rt.block_on(async {
                let _ = d.await;
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = text
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        let (cpu, wall, known) = (f[0], f[1], f[2]);
        let pct = cpu / wall * 100.0;
        println!(
            "  {label:42}: watcher CPU {:.1} ms over {:.1} s = {pct:.3}% of one core ({} agents known) target < 2%: {}",
            cpu / 1e6, wall / 1e9, known, if pct < 2.0 { "MET" } else { "MISSED" }
        );
        drop(clients);
    }
}
