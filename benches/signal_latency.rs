//! Signal-to-supervisor latency: from the moment an agent calls
//! `mark_ready` / `mark_not_ready` until the AgentWatcher's change stream
//! delivers it. Redis on loopback.
//!
//! cargo bench --bench signal_latency   (SIGNALS=1000 by default)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use muster::signal::{AgentWatcher, Client, ClientOptions, Source, WatcherConfig};

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = support::bench::env_num("SIGNALS", 1000);
    let redis = support::RedisServer::start();
    let url = redis.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut cfg = WatcherConfig::new(url.clone(), "lat");
        // Events only, as the signal test `view_flips_on_each_signal_from_its_event`.
        cfg.resync_period = Duration::from_secs(3600);
        cfg.poll_period = Duration::from_secs(3600);
        let watcher = AgentWatcher::start(cfg).unwrap();
        assert!(watcher.wait_subscribed(Duration::from_secs(5)).await);
        let mut rx = watcher.changes();
        let client = Client::connect_with(&url, ClientOptions { namespace: "lat".into(), ..Default::default() })
            .await
            .unwrap();
        let mut lat = Vec::with_capacity(n);
        for i in 0..n + 50 {
            let t = Instant::now();
            if i % 2 == 0 {
                client.mark_ready("bench-agent", &[]).await.unwrap();
            } else {
                client.mark_not_ready("bench-agent", "flap").await.unwrap();
            }
            let change = rx.recv().await.unwrap();
            let us = t.elapsed().as_secs_f64() * 1e6;
            assert_eq!(change.view.readiness.is_ready(), i % 2 == 0);
            assert_eq!(change.view.source, Source::Event);
            if i >= 50 {
                lat.push(us); // the first 50 warm up
            }
        }
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (med, p99) = (pct(&lat, 0.5) / 1000.0, pct(&lat, 0.99) / 1000.0);
        println!(
            "signal -> watcher, {n} signals: median {med:.3} ms  p90 {:.3} ms  p99 {p99:.3} ms  max {:.3} ms",
            pct(&lat, 0.9) / 1000.0,
            lat[lat.len() - 1] / 1000.0
        );
        println!(
            "targets: median < 2 ms {}; p99 < 10 ms {}",
            if med < 2.0 { "MET" } else { "MISSED" },
            if p99 < 10.0 { "MET" } else { "MISSED" }
        );
    });
}
