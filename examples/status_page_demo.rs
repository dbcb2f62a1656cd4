//! Serves the health endpoint over a populated, changing `StateStore`, for
//! looking at the status page (and for the screenshot in docs/).
//!
//! ```sh
//! cargo run --example status_page_demo -- 127.0.0.1:8687
//! # then open http://127.0.0.1:8687/ (or curl /readyz?verbose, /status, /metrics, /events)
//! ```

use std::time::Duration;

use muster::compose::xmuster::ProbeRole;
use muster::health::{self, ServerOptions};
use muster::probe::ProbeOutcome;
use muster::supervisor::{ProbeObservation, ProbeReport, ServiceState, ServiceStatus, Writer};

struct Spec {
    name: &'static str,
    image: &'static str,
    level: usize,
    deps: &'static [&'static str],
    probe: (&'static str, &'static str),
    required: bool,
    grace_ms: u64,
}

const STACK: &[Spec] = &[
    Spec {
        name: "redis",
        image: "redis:7.4",
        level: 0,
        deps: &[],
        probe: ("redis", "redis://redis:6379"),
        required: true,
        grace_ms: 10_000,
    },
    Spec {
        name: "nats",
        image: "nats:2.10",
        level: 0,
        deps: &[],
        probe: ("nats", "nats://nats:4222"),
        required: true,
        grace_ms: 10_000,
    },
    Spec {
        name: "migrate",
        image: "agents/migrate:1.4",
        level: 1,
        deps: &["redis"],
        probe: ("docker", "exit code"),
        required: false,
        grace_ms: 0,
    },
    Spec {
        name: "memory-agent",
        image: "agents/memory:2.1 (14.2 GB)",
        level: 1,
        deps: &["redis"],
        probe: ("agent", "muster:ready:memory-agent"),
        required: true,
        grace_ms: 420_000,
    },
    Spec {
        name: "planner-agent",
        image: "agents/planner:2.1",
        level: 1,
        deps: &["redis", "nats"],
        probe: ("agent", "muster:ready:planner-agent"),
        required: true,
        grace_ms: 60_000,
    },
    Spec {
        name: "retriever-agent",
        image: "agents/retriever:0.9",
        level: 1,
        deps: &["redis", "nats"],
        probe: ("agent", "muster:ready:retriever-agent"),
        required: true,
        grace_ms: 60_000,
    },
    Spec {
        name: "api",
        image: "agents/api:3.0",
        level: 2,
        deps: &["memory-agent", "planner-agent", "retriever-agent"],
        probe: ("http", "http://api:8080/health"),
        required: true,
        grace_ms: 30_000,
    },
];

fn step(store: &Writer, name: &str, to: ServiceState, reason: &str) {
    store.transition(name, to, reason);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8687".into());
    let options = ServerOptions {
        listen: health::parse_listen(&listen)?,
        ..ServerOptions::default()
    };
    let store = Writer::new("agents");
    for spec in STACK {
        let mut s = ServiceStatus::pending(spec.name);
        s.image = Some(spec.image.into());
        s.level = spec.level;
        s.depends_on = spec.deps.iter().map(|d| d.to_string()).collect();
        s.required = spec.required;
        s.grace_ms = spec.grace_ms;
        s.container_ids = vec![format!("{:012x}", spec.name.len() * 0x1f2e3d4c5b)];
        s.probes = vec![ProbeReport {
            kind: spec.probe.0.into(),
            target: spec.probe.1.into(),
            role: ProbeRole::Readiness,
            last: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
        }];
        store.insert(s);
    }
    // Start-up history, so the page shows a stack part-way up.
    for (name, reason) in [("redis", "PONG"), ("nats", "connected, flush 0.4ms")] {
        step(&store, name, ServiceState::Starting, "container started");
        step(&store, name, ServiceState::Ready, reason);
    }
    step(
        &store,
        "migrate",
        ServiceState::Starting,
        "container started",
    );
    step(&store, "migrate", ServiceState::Completed, "exited 0");
    step(
        &store,
        "planner-agent",
        ServiceState::Starting,
        "container started",
    );
    step(
        &store,
        "planner-agent",
        ServiceState::Ready,
        "agent signalled ready",
    );
    step(
        &store,
        "retriever-agent",
        ServiceState::Starting,
        "container started",
    );
    step(
        &store,
        "retriever-agent",
        ServiceState::Ready,
        "agent signalled ready",
    );
    step(
        &store,
        "retriever-agent",
        ServiceState::Unready,
        "ready key expired (no refresh within 30s)",
    );
    store.update("retriever-agent", |s| s.restarts = 1);
    step(
        &store,
        "memory-agent",
        ServiceState::Starting,
        "container started; grace 7m (image 14.2 GB)",
    );
    step(
        &store,
        "api",
        ServiceState::Blocked,
        "waiting for memory-agent, retriever-agent",
    );

    // The simulator below is the store's one writer; the endpoint reads.
    let reader = store.store();
    let sim = store;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000));
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            sim.beat();
            let pct = 40 + (n % 60);
            sim.update("memory-agent", |s| {
                s.progress = Some(format!("loading model {pct}%"))
            });
            let snap = sim.snapshot();
            for svc in snap.services.values() {
                let outcome = match svc.state {
                    ServiceState::Ready => {
                        ProbeOutcome::ok(Duration::from_micros(300 + n % 700), "ok")
                    }
                    ServiceState::Completed | ServiceState::Blocked | ServiceState::Pending => {
                        continue
                    }
                    ServiceState::Starting => {
                        ProbeOutcome::fail(Duration::from_millis(1), "agent status: starting")
                    }
                    _ => ProbeOutcome::fail(Duration::from_millis(2), svc.reason.clone()),
                };
                let kind = svc
                    .probes
                    .first()
                    .map(|p| p.kind.clone())
                    .unwrap_or_default();
                sim.update(&svc.name, |s| {
                    if let Some(p) = s.probes.first_mut() {
                        p.last = Some(outcome.clone());
                    }
                });
                sim.observe_probe(ProbeObservation {
                    service: svc.name.clone(),
                    kind,
                    outcome,
                });
            }
            // Every 20 s the retriever flaps, so /events has something to say.
            if n % 20 == 10 {
                step(
                    &sim,
                    "retriever-agent",
                    ServiceState::Ready,
                    "agent signalled ready",
                );
            } else if n.is_multiple_of(20) {
                step(
                    &sim,
                    "retriever-agent",
                    ServiceState::Unready,
                    "ready key expired (no refresh within 30s)",
                );
            }
        }
    });

    let listener = health::bind(options.listen).await?;
    println!("status page demo on http://{}/", listener.local_addr()?);
    health::serve(listener, reader, options, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
