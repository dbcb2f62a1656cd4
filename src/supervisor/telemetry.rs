//! Resource telemetry per service and per container (issue #18 item 8): CPU
//! and memory against the limit, sampled on an interval by one actor of its
//! own and published on the store's telemetry channel, which `/status`,
//! `/metrics`, the status page and `status --watch` read. It writes no
//! service state; the healer reads the last sample of a container the kernel
//! OOM-killed to say how far it got ("OOM-killed at 1.9 GiB of 2 GiB").
//!
//! Where a sample comes from: see `engine/stats.rs` (the container's cgroup,
//! else the engine's one-shot stats).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::state::{ReplicaState, StackSnapshot};
use super::store::StateStore;
use crate::clock::now_ms;
use crate::engine::stats::{Cgroups, RawUsage};

pub use super::usage::{bytes, ContainerUsage, ServiceUsage, Telemetry};
use crate::engine::Engine;

/// The sampler's settings (`telemetry_interval`).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryOptions {
    /// How often every running container is sampled; zero turns it off.
    pub interval: Duration,
    /// The host's cgroup tree.
    pub cgroup_root: PathBuf,
}

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

impl Default for TelemetryOptions {
    fn default() -> Self {
        TelemetryOptions {
            interval: DEFAULT_INTERVAL,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

/// Engine stats calls in flight at once (the fallback source).
const ENGINE_CALLS: usize = 32;

/// How long a gone container's last sample is kept.
const KEEP_GONE: Duration = Duration::from_secs(60);

/// The sampler's memory between two rounds.
#[derive(Default)]
pub struct Sampler {
    /// id -> (CPU ns, when read), for the CPU ratio.
    previous: HashMap<String, (u64, Instant)>,
    /// id -> (last sample, when last seen).
    last: HashMap<String, (ContainerUsage, Instant)>,
}

/// The containers to sample: every running replica (or, before the healer
/// lists replicas, the service's container ids, named from `names`), as
/// (service, name, id).
fn running(
    snapshot: &StackSnapshot,
    names: &HashMap<String, String>,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (service, status) in &snapshot.services {
        if status.replicas.is_empty() {
            for id in &status.container_ids {
                let name = names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.chars().take(12).collect());
                out.push((service.clone(), name, id.clone()));
            }
        } else {
            for r in &status.replicas {
                if r.state == ReplicaState::Running {
                    out.push((service.clone(), r.name.clone(), r.id.clone()));
                }
            }
        }
    }
    out
}

impl Sampler {
    /// One round: every running container of `snapshot`, from its cgroup
    /// or (when it has none here) the engine.
    pub async fn round(
        &mut self,
        engine: &Engine,
        cgroups: &Cgroups,
        snapshot: &StackSnapshot,
    ) -> Telemetry {
        // Names for containers the healer does not list yet (during `up`):
        // one list call, only then.
        let unlisted = snapshot
            .services
            .values()
            .any(|s| s.replicas.is_empty() && !s.container_ids.is_empty());
        let names: HashMap<String, String> = match unlisted {
            true => engine
                .list_project_containers(&snapshot.project, None)
                .await
                .map(|list| list.into_iter().map(|c| (c.id, c.name)).collect())
                .unwrap_or_default(),
            false => HashMap::new(),
        };
        let targets = running(snapshot, &names);
        let mut telemetry = Telemetry {
            at_ms: now_ms(),
            ..Telemetry::default()
        };
        let mut read = Vec::with_capacity(targets.len());
        let mut ask_engine = Vec::new();
        for (service, name, id) in targets {
            match cgroups.read(&id) {
                Some(raw) => read.push((service, name, id, raw, Instant::now())),
                None => ask_engine.push((service, name, id)),
            }
        }
        // The engine answers a stats call on its next collection tick (up to
        // a second), so its calls run together, a bounded number at once.
        let answers: Vec<_> = futures_util::stream::iter(ask_engine)
            .map(|(service, name, id)| async move {
                let raw = engine.one_shot_stats(&id).await;
                (service, name, id, raw, Instant::now())
            })
            .buffer_unordered(ENGINE_CALLS)
            .collect()
            .await;
        for (service, name, id, raw, at) in answers {
            match raw {
                Ok(raw) => read.push((service, name, id, raw, at)),
                Err(e) => {
                    tracing::debug!(container = %name, error = %crate::error_text::error_chain(&e), "no resource sample");
                }
            }
        }
        for (service, name, id, raw, at) in read {
            let usage = self.usage(&name, &id, raw, at);
            let entry = telemetry.services.entry(service).or_default();
            entry.replicas.push(usage);
        }
        for usage in telemetry.services.values_mut() {
            usage.replicas.sort_by(|a, b| a.name.cmp(&b.name));
        }
        for usage in telemetry.services.values_mut() {
            usage.cpu_ratio = usage.replicas.iter().filter_map(|r| r.cpu_ratio).sum();
            usage.memory_bytes = usage.replicas.iter().map(|r| r.memory_bytes).sum();
            usage.memory_limit_bytes = usage
                .replicas
                .iter()
                .map(|r| r.memory_limit_bytes)
                .sum::<Option<u64>>();
        }
        let now = Instant::now();
        self.last
            .retain(|_, (_, seen)| now.duration_since(*seen) < KEEP_GONE);
        self.previous.retain(|id, _| self.last.contains_key(id));
        telemetry.last = self
            .last
            .iter()
            .map(|(id, (u, _))| (id.clone(), u.clone()))
            .collect();
        telemetry
    }

    /// One container's reading, with its CPU ratio since the previous one.
    pub fn usage(&mut self, name: &str, id: &str, raw: RawUsage, at: Instant) -> ContainerUsage {
        let cpu_ratio = self.previous.get(id).and_then(|(ns, when)| {
            let wall = at.duration_since(*when).as_nanos() as f64;
            (wall > 0.0 && raw.cpu_ns >= *ns).then(|| (raw.cpu_ns - ns) as f64 / wall)
        });
        self.previous.insert(id.to_string(), (raw.cpu_ns, at));
        let usage = ContainerUsage {
            name: name.to_string(),
            id: id.to_string(),
            cpu_ratio,
            memory_bytes: raw.memory_bytes,
            memory_peak_bytes: raw.memory_peak_bytes,
            memory_limit_bytes: raw.memory_limit_bytes,
            source: raw.source,
        };
        self.last.insert(id.to_string(), (usage.clone(), at));
        usage
    }
}

/// Starts the sampler (none with a zero interval).
pub fn spawn(
    engine: Engine,
    store: StateStore,
    options: TelemetryOptions,
) -> Option<JoinHandle<()>> {
    if options.interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let cgroups = Cgroups::detect(&options.cgroup_root);
        tracing::debug!(?cgroups, "resource telemetry");
        let mut sampler = Sampler::default();
        let mut tick = tokio::time::interval(options.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let snapshot = store.snapshot();
            let telemetry = sampler.round(&engine, &cgroups, &snapshot).await;
            store.publish_telemetry(Arc::new(telemetry));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stats::StatsSource;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(64 * 1024 * 1024), "64 MiB");
        assert_eq!(bytes(2 * 1024 * 1024 * 1024), "2 GiB");
        assert_eq!(bytes(2040 * 1024 * 1024), "2.0 GiB");
        assert_eq!(bytes(1_950 * 1024 * 1024), "1.9 GiB");
    }

    #[test]
    fn cpu_is_the_ratio_of_cpu_time_to_wall_time_between_samples() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        let raw = |cpu_ns| RawUsage {
            cpu_ns,
            memory_bytes: 1 << 20,
            memory_peak_bytes: Some(2 << 20),
            memory_limit_bytes: Some(64 << 20),
            source: StatsSource::CgroupV1,
        };
        let first = s.usage("web-1", "abc", raw(1_000_000_000), t0);
        assert_eq!(first.cpu_ratio, None);
        let second = s.usage(
            "web-1",
            "abc",
            raw(1_500_000_000),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(second.cpu_ratio, Some(0.25));
        assert_eq!(second.oom_text(), "OOM-killed at 2 MiB of 64 MiB");
    }
}
