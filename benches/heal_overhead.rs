//! What healing costs while nothing needs healing: a stack of N services
//! (10 dependency levels, each service depending on up to 3 of the level
//! before) in a real state store, changed R times a second for S seconds
//! (reasons, and every 10th change a service going unready and back, so the
//! degraded marks of its dependents are recomputed and written). Runs the
//! same load once without and once with the healer attached (real engine
//! connection and event stream, the project has no containers), and reports
//! the CPU time of this process for both and the difference per change.
//!
//!   cargo bench --bench heal_overhead                          # 1000 services, 100 changes/s, 10 s
//!   cargo bench --bench heal_overhead -- --services 200 --rate 50 --seconds 5

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use muster::compose::{Condition, Dependency, Project, Service};
use muster::engine::Engine;
use muster::supervisor::heal::{self, HealMode, HealOptions};
use muster::supervisor::runner::{StateWrites, StatusWrite};
use muster::supervisor::{ServiceState, ServiceStatus, Writer};
use support::bench::{arg, cpu_time};

fn stack(name: &str, n: usize) -> (Project, StateWrites) {
    let per_level = n.div_ceil(10).max(1);
    let mut services = BTreeMap::new();
    let store = Writer::new(name);
    for i in 0..n {
        let level = i / per_level;
        let svc = format!("s{i:04}");
        let mut depends_on = BTreeMap::new();
        if level > 0 {
            for k in 0..3 {
                let dep = (level - 1) * per_level + (i * 7 + k * 13) % per_level;
                depends_on.insert(
                    format!("s{dep:04}"),
                    Dependency {
                        condition: Condition::ServiceHealthy,
                        required: true,
                        restart: k == 0,
                        implicit: false,
                    },
                );
            }
        }
        let mut status = ServiceStatus::pending(svc.clone());
        status.depends_on = depends_on.keys().cloned().collect();
        status.level = level;
        store.insert(status);
        store.transition(&svc, ServiceState::Ready, "ok");
        services.insert(
            svc.clone(),
            Service {
                name: svc,
                image: Some("none".into()),
                replicas: 1,
                depends_on,
                ..Default::default()
            },
        );
    }
    let project = Project {
        name: name.to_string(),
        services,
        ..Default::default()
    };
    // From here on a runner without probes is the store's one writer: the
    // load and the healer both send it their writes.
    (project, StateWrites::own(store))
}

async fn load(writes: &StateWrites, n: usize, rate: u64, seconds: u64, toggle: u64) -> u64 {
    let store = writes.store();
    let swaps = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = {
        let swaps = swaps.clone();
        let mut rx = store.watch();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                swaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut changes = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        let i = (changes as usize * 31) % n;
        let name = format!("s{i:04}");
        if toggle > 0 && changes.is_multiple_of(toggle) {
            writes.set(&name, ServiceState::Unready, "refused");
            tick.tick().await;
            writes.set(&name, ServiceState::Ready, "ok");
            changes += 2;
        } else {
            // A change that is not a transition (as a probe report is).
            writes.status(&name, StatusWrite::Progress(Some(format!("ok {changes}"))));
            changes += 1;
        }
    }
    counter.abort();
    eprintln!(
        "  ({} snapshot swaps seen for {changes} changes)",
        swaps.load(std::sync::atomic::Ordering::Relaxed)
    );
    changes
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = arg("--services", 1000) as usize;
    let rate = arg("--rate", 100);
    let seconds = arg("--seconds", 10);
    // Every Nth change is a service going unready and back (0: never).
    let toggle = arg("--toggle", 10);
    let engine = Engine::connect().await.expect("docker engine");

    let (_, writes) = stack("muster-bench-heal-a", n);
    let cpu0 = cpu_time();
    let base_changes = load(&writes, n, rate, seconds, toggle).await;
    let base = cpu_time() - cpu0;

    let (project, writes) = stack("muster-bench-heal-b", n);
    let store = writes.store().clone();
    let _healer = heal::spawn(
        writes.clone(),
        None,
        BTreeSet::new(),
        HealOptions::new(engine, project, HealMode::Serve),
    );
    store
        .watch()
        .wait_for(|s| s.engine.as_ref().is_some_and(|l| l.connected))
        .await
        .expect("healer connected");
    let cpu0 = cpu_time();
    let changes = load(&writes, n, rate, seconds, toggle).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with = cpu_time() - cpu0;
    let degraded = store
        .snapshot()
        .services
        .values()
        .filter(|s| s.degraded)
        .count();
    assert_eq!(degraded, 0, "everything is ready again at the end");

    let per_change = (with.as_secs_f64() - base.as_secs_f64()).max(0.0) / changes.max(1) as f64;
    println!("heal_overhead: {n} services, {rate} changes/s, {seconds} s");
    println!(
        "  without healer: {base_changes} changes, CPU {:.2} s ({:.1} % of one core)",
        base.as_secs_f64(),
        100.0 * base.as_secs_f64() / seconds as f64
    );
    println!(
        "  with healer:    {changes} changes, CPU {:.2} s ({:.1} % of one core)",
        with.as_secs_f64(),
        100.0 * with.as_secs_f64() / seconds as f64
    );
    println!(
        "  healer cost:    {:.0} µs of CPU per snapshot change",
        per_change * 1e6
    );
}
