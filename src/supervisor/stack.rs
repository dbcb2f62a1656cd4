//! `muster down` and `muster ps`: everything found by the compose project label,
//! so they work without the compose file (and on stacks `docker compose` started).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::engine::{Engine, EngineError, PublishedPort};

/// What `down` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DownReport {
    pub project: String,
    /// Container names, in the order they were removed (dependents first).
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// Stops and removes the project's containers in reverse dependency order
/// (dependents before what they depend on; one wave at a time, each wave in
/// parallel), then its networks, and its volumes when `volumes` is set.
/// The order comes from the containers' `com.docker.compose.depends_on` labels.
pub async fn down(
    engine: &Engine,
    project: &str,
    volumes: bool,
) -> Result<DownReport, EngineError> {
    let containers = engine.list_project_containers(project, None).await?;
    let mut by_service: BTreeMap<String, Vec<crate::engine::ContainerInfo>> = BTreeMap::new();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in containers {
        deps.entry(c.service.clone())
            .or_default()
            .extend(c.depends_on.iter().cloned());
        by_service.entry(c.service.clone()).or_default().push(c);
    }
    let mut report = DownReport {
        project: project.to_string(),
        ..Default::default()
    };
    let mut left: BTreeSet<String> = by_service.keys().cloned().collect();
    while !left.is_empty() {
        // Services nothing left depends on.
        let mut wave: Vec<String> = left
            .iter()
            .filter(|s| {
                !left
                    .iter()
                    .any(|other| deps.get(other).is_some_and(|d| d.contains(*s)))
            })
            .cloned()
            .collect();
        if wave.is_empty() {
            // A cycle in the labels: remove the rest together.
            wave = left.iter().cloned().collect();
        }
        let mut jobs = Vec::new();
        for service in &wave {
            for c in by_service.get(service).into_iter().flatten() {
                report.containers.push(c.name.clone());
                let engine = engine.clone();
                let id = c.id.clone();
                jobs.push(async move {
                    engine.stop_container(&id, None).await?;
                    engine.remove_container(&id, true).await
                });
            }
        }
        for r in futures_util::future::join_all(jobs).await {
            r?;
        }
        for s in &wave {
            left.remove(s);
        }
    }
    for network in engine.list_project_networks(project).await? {
        engine.remove_network(&network).await?;
        report.networks.push(network);
    }
    if volumes {
        for volume in engine.list_project_volumes(project).await? {
            engine.remove_volume(&volume).await?;
            report.volumes.push(volume);
        }
    }
    Ok(report)
}

/// One row of `muster ps`.
#[derive(Debug, Clone, Serialize)]
pub struct PsRow {
    pub name: String,
    pub service: String,
    pub number: u32,
    pub id: String,
    pub image: String,
    /// The ID of the image the container runs (`sha256:…`): after a rebuild
    /// or a new pull under the same name, this is what changed.
    pub image_id: String,
    /// `running`, `exited`, …
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`; `None` without a healthcheck.
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    /// Seconds since the container started (running ones only).
    pub uptime_s: Option<u64>,
    pub ports: Vec<PublishedPort>,
}

/// The project's containers with state, health, uptime and ports.
pub async fn ps(engine: &Engine, project: &str) -> Result<Vec<PsRow>, EngineError> {
    let containers = engine.list_project_containers(project, None).await?;
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let mut rows = Vec::new();
    for c in containers {
        let details = match engine.inspect_container(&c.id).await {
            Ok(d) => d,
            // Removed between list and inspect.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let uptime_s = if details.running {
            details
                .started_at_ns()
                .map(|t| ((now_ns - t).max(0) / 1_000_000_000) as u64)
        } else {
            None
        };
        rows.push(PsRow {
            name: c.name,
            service: c.service,
            number: c.number,
            id: c.id.chars().take(12).collect(),
            image: c.image,
            image_id: c.image_id,
            state: details.status,
            health: details.health.map(|h| h.to_string()),
            exit_code: details.exit_code,
            uptime_s,
            ports: c.ports,
        });
    }
    Ok(rows)
}

/// `3h12m`, `4m05s`, `12s`.
pub fn format_uptime(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}
