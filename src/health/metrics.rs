//! `GET /metrics`: OpenMetrics / Prometheus text through `prometheus-client`.
//!
//! Two sources: per-service series computed from the snapshot at scrape time
//! (a [`Collector`], so services that come and go need no bookkeeping), and
//! probe latency / failures, which follow [`StateStore::probe_runs`].

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast::error::RecvError;

use crate::supervisor::{ProbeObservation, ServiceState, ServiceStatus, StateStore};

/// What `GET /metrics` answers with (the OpenMetrics text format, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

fn probe_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub(crate) struct Metrics {
    registry: Registry,
    probe_latency: Family<Labels, Histogram, fn() -> Histogram>,
    probe_failures: Family<Labels, Counter>,
    dropped: Counter,
}

impl Metrics {
    pub(crate) fn new(store: StateStore) -> Metrics {
        let mut registry = Registry::default();
        registry.register(
            "muster_build",
            "muster build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]),
        );
        let probe_latency: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(probe_histogram);
        registry.register(
            "muster_probe_duration_seconds",
            "Latency of probe runs (every outcome)",
            probe_latency.clone(),
        );
        let probe_failures = Family::<Labels, Counter>::default();
        registry.register(
            "muster_probe_failures",
            "Probe runs that failed or timed out",
            probe_failures.clone(),
        );
        let dropped = Counter::default();
        registry.register(
            "muster_probe_observations_dropped",
            "Probe runs the metrics follower missed because it lagged behind",
            dropped.clone(),
        );
        registry.register_collector(Box::new(SnapshotCollector { store }));
        Metrics {
            registry,
            probe_latency,
            probe_failures,
            dropped,
        }
    }

    pub(crate) fn observe(&self, run: &ProbeObservation) {
        let labels: Labels = vec![("service", run.service.clone()), ("kind", run.kind.clone())];
        self.probe_latency
            .get_or_create(&labels)
            .observe(run.outcome.latency.as_secs_f64());
        if !run.outcome.is_ok() {
            self.probe_failures.get_or_create(&labels).inc();
        } else {
            // Make the series exist at 0, so rate() works from the first failure.
            let _ = self.probe_failures.get_or_create(&labels);
        }
    }

    /// Follows probe runs until the store goes away. A lagging follower
    /// counts what it missed and carries on.
    pub(crate) async fn follow(
        &self,
        mut runs: tokio::sync::broadcast::Receiver<ProbeObservation>,
    ) {
        loop {
            match runs.recv().await {
                Ok(run) => self.observe(&run),
                Err(RecvError::Lagged(n)) => {
                    self.dropped.inc_by(n);
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    pub(crate) fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

struct SnapshotCollector {
    store: StateStore,
}

impl fmt::Debug for SnapshotCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnapshotCollector")
    }
}

/// Seconds from the last move into `starting` to the `ready` that followed
/// it, from the service's transition history.
pub(crate) fn time_to_ready(status: &ServiceStatus) -> Option<f64> {
    let ready_at = status
        .transitions
        .iter()
        .rposition(|t| t.to == ServiceState::Ready)?;
    let start = status.transitions[..ready_at]
        .iter()
        .rev()
        .find(|t| t.to == ServiceState::Starting)?;
    let ready = &status.transitions[ready_at];
    Some(ready.at_ms.saturating_sub(start.at_ms) as f64 / 1000.0)
}

fn gauge_family<T>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl Iterator<Item = (Labels, T)>,
) -> fmt::Result
where
    T: prometheus_client::encoding::EncodeGaugeValue,
{
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

impl SnapshotCollector {
    /// Per container: CPU and memory from the last resource sample, restarts
    /// and OOM kills from the healer's view of the replicas.
    fn encode_containers(
        &self,
        encoder: &mut DescriptorEncoder,
        snap: &crate::supervisor::StackSnapshot,
    ) -> fmt::Result {
        let telemetry = self.store.telemetry();
        let rows = || {
            telemetry.services.iter().flat_map(|(service, usage)| {
                usage.replicas.iter().map(move |c| {
                    let labels: Labels =
                        vec![("service", service.clone()), ("container", c.name.clone())];
                    (labels, c)
                })
            })
        };
        gauge_family(
            encoder,
            "muster_container_cpu_ratio",
            "CPU time per wall time over the last sampling interval (1 = one core)",
            rows().filter_map(|(l, c)| c.cpu_ratio.map(|r| (l, r))),
        )?;
        gauge_family(
            encoder,
            "muster_container_memory_bytes",
            "Memory in use (usage minus inactive file cache, as docker stats counts it)",
            rows().map(|(l, c)| (l, c.memory_bytes as i64)),
        )?;
        gauge_family(
            encoder,
            "muster_container_memory_limit_bytes",
            "The container's memory limit (containers without one have no series)",
            rows().filter_map(|(l, c)| c.memory_limit_bytes.map(|m| (l, m as i64))),
        )?;
        let replicas = || {
            snap.services.values().flat_map(|s| {
                s.replicas.iter().map(move |r| {
                    let labels: Labels =
                        vec![("service", s.name.clone()), ("container", r.name.clone())];
                    (labels, r)
                })
            })
        };
        for (name, help, value) in [
            (
                "muster_container_oom_kills",
                "OOM kills of the container seen while muster followed it",
                (|r: &crate::supervisor::ReplicaStatus| r.oom_kills) as fn(&_) -> u32,
            ),
            (
                "muster_container_restarts",
                "The engine's restart count of the container",
                |r: &crate::supervisor::ReplicaStatus| r.restarts,
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, r) in replicas() {
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&u64::from(value(r)), None)?;
            }
        }
        Ok(())
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let snap = self.store.snapshot();
        let services = || snap.services.values();
        let one = |s: &ServiceStatus| -> Labels { vec![("service", s.name.clone())] };

        gauge_family(
            &mut encoder,
            "muster_stack_ready",
            "1 when every required service is ready (what /readyz answers)",
            std::iter::once((
                Labels::new(),
                i64::from(!snap.services.is_empty() && snap.all_required_ready()),
            )),
        )?;
        gauge_family(
            &mut encoder,
            "muster_service_state",
            "The service's current state: one series per state, 1 for the current one",
            services().flat_map(|s| {
                super::status::all_states().iter().map(move |state| {
                    (
                        vec![
                            ("service", s.name.clone()),
                            ("state", state.as_str().to_string()),
                        ],
                        i64::from(s.state == *state),
                    )
                })
            }),
        )?;
        gauge_family(
            &mut encoder,
            "muster_service_ready",
            "1 when the service is ready (or completed)",
            services().map(|s| (one(s), i64::from(s.state.is_ready()))),
        )?;
        gauge_family(
            &mut encoder,
            "muster_service_required",
            "1 when the service holds /readyz at 503 while not ready",
            services().map(|s| (one(s), i64::from(s.required))),
        )?;
        gauge_family(
            &mut encoder,
            "muster_service_state_since_timestamp_seconds",
            "Unix time of the service's last state change",
            services().map(|s| (one(s), s.since_ms as f64 / 1000.0)),
        )?;
        gauge_family(
            &mut encoder,
            "muster_service_time_to_ready_seconds",
            "Seconds from the last start to ready (from the state history)",
            services().filter_map(|s| time_to_ready(s).map(|t| (one(s), t))),
        )?;
        gauge_family(
            &mut encoder,
            "muster_service_paused",
            "1 while the service is paused for maintenance (muster pause): no healing, no alerts",
            services().map(|s| (one(s), i64::from(s.heal.paused.is_some()))),
        )?;
        gauge_family(
            &mut encoder,
            "muster_service_grace_period_seconds",
            "The service's effective grace (start) period",
            services().map(|s| (one(s), s.grace_ms as f64 / 1000.0)),
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "muster_service_restarts",
                "Restarts of the service's containers seen by muster",
                None,
                MetricType::Counter,
            )?;
            for s in services() {
                let labels = one(s);
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&u64::from(s.restarts), None)?;
            }
        }
        let link = |name: &String| -> Labels { vec![("link", name.clone())] };
        gauge_family(
            &mut encoder,
            "muster_link_up",
            "1 while the connection is up (engine, redis, nats, history, webhook), 0 while muster reconnects",
            snap.links.iter().map(|(name, l)| {
                (link(name), i64::from(l.state == crate::link::LinkState::Connected))
            }),
        )?;
        gauge_family(
            &mut encoder,
            "muster_link_attempts",
            "Failed attempts since the connection was last up",
            snap.links
                .iter()
                .map(|(name, l)| (link(name), i64::from(l.attempts))),
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "muster_link_reconnects",
                "Times the connection was up again after it was lost",
                None,
                MetricType::Counter,
            )?;
            for (name, l) in &snap.links {
                let labels = link(name);
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&l.reconnects, None)?;
            }
        }
        if services().any(|s| !s.tasks.is_empty()) {
            gauge_family(
                &mut encoder,
                "muster_swarm_task_ready",
                "On Swarm: 1 when the task passes muster's probes, per task and node",
                services().flat_map(|s| {
                    s.tasks.iter().filter(|t| t.desired == "running").map(|t| {
                        (
                            vec![
                                ("service", s.name.clone()),
                                ("task", t.task_id.clone()),
                                ("node", t.node.clone()),
                            ],
                            i64::from(t.ready),
                        )
                    })
                }),
            )?;
        }
        self.encode_containers(&mut encoder, &snap)?;
        if let Some(link) = &snap.engine {
            gauge_family(
                &mut encoder,
                "muster_engine_connected",
                "1 while muster follows the engine's event stream (it sees exits and heals only then)",
                std::iter::once((Labels::new(), i64::from(link.connected))),
            )?;
            let mut metric = encoder.encode_descriptor(
                "muster_engine_reconnects",
                "Times the engine's event stream was re-established after it dropped",
                None,
                MetricType::Counter,
            )?;
            metric.encode_counter::<NoLabelSet, _, u64>(&u64::from(link.reconnects), None)?;
        }
        Ok(())
    }
}
