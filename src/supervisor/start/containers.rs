//! A service's containers brought to the wanted config without starting
//! them (keep, create, or recreate by config hash; scale down first), and
//! started when the dependencies allow.
//!
//! A service that joins another container's network namespace
//! (`network_mode: service:X` or `container:NAME`) is pointed at that
//! container's current id, and recreated when the id it joined is not the
//! current one: the engine stores `container:<id>`, so after X is recreated a
//! restart would rejoin a namespace that is gone (the dockhand #991 report).

use super::*;
use crate::supervisor::state::Cause;

/// Why a service's containers could not be brought to the wanted config or
/// started (said as the service's `failed` reason).
#[derive(Debug, thiserror::Error)]
pub(super) enum ContainerError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Translate(#[from] TranslateError),
}

/// The service's containers, brought to the wanted config but not started yet.
pub(super) struct Prepared {
    pub(super) ids: Vec<String>,
    /// Containers to start (new ones, and existing ones that are not running).
    pub(super) to_start: Vec<String>,
    /// Containers created by this `up` (removed again if the service is blocked).
    pub(super) created: Vec<String>,
    pub(super) changed: bool,
    pub(super) kept: usize,
}

/// Brings the service's containers to the wanted config (keep, or remove and
/// create when the config hash differs or `force`), without starting them.
/// `existing` is the service's containers as listed at the start of `up`
/// (`None`: list them now).
pub(super) async fn prepare(
    ctx: &Ctx,
    service: &Service,
    force: bool,
    existing: Option<Vec<crate::engine::ContainerInfo>>,
) -> Result<Prepared, ContainerError> {
    let engine = &ctx.engine;
    let name = &service.name;
    let existing = match existing {
        Some(list) => list,
        None => {
            engine
                .list_project_containers(&ctx.project.name, Some(name))
                .await?
        }
    };
    let hash = labels::config_hash(service);
    // The image's current ID: a rebuilt image keeps its name but not its ID.
    let image_id = match &service.image {
        Some(image) => engine.image_info(image).await.ok().flatten().map(|i| i.id),
        None => None,
    };
    let wanted = service.replicas;
    let namespace = engine
        .shared_namespace(&ctx.project.name, service.network_mode.as_deref())
        .await?;

    // Scale down / drop duplicates first.
    let mut by_number: BTreeMap<u32, crate::engine::ContainerInfo> = BTreeMap::new();
    for c in existing {
        if c.number == 0 || by_number.contains_key(&c.number) {
            engine.remove_container(&c.id, false).await?;
        } else {
            by_number.insert(c.number, c);
        }
    }
    // Keep the `wanted` lowest numbers, whatever they are (`muster rollout`
    // gives new containers fresh numbers); fill the gaps from 1.
    while by_number.len() > wanted as usize {
        if let Some((_, c)) = by_number.pop_last() {
            engine.remove_container(&c.id, false).await?;
        }
    }
    let slots: Vec<u32> = by_number
        .keys()
        .copied()
        .chain((1..).filter(|n| !by_number.contains_key(n)))
        .take(wanted as usize)
        .collect();

    let mut to_start = Vec::new();
    let mut created = Vec::new();
    let mut ids = Vec::new();
    let mut changed = false;
    let mut kept = 0;
    for number in slots {
        match by_number.remove(&number) {
            Some(c)
                if !force
                    && labels::is_current(
                        c.config_hash.as_deref(),
                        &hash,
                        &c.image_id,
                        image_id.as_deref(),
                    )
                    && joins(&c, namespace.as_deref()) =>
            {
                if c.state != "running" {
                    to_start.push(c.id.clone());
                } else {
                    kept += 1;
                }
                ids.push(c.id);
            }
            other => {
                if let Some(old) = other {
                    if joins(&old, namespace.as_deref()) {
                        tracing::info!(service = %name, container = %old.name, "config changed; recreating");
                    } else {
                        tracing::info!(service = %name, container = %old.name, joined = ?old.network_mode, now = ?namespace, "the container whose network namespace it joins was recreated; recreating");
                    }
                    engine
                        .stop_container(&old.id, service.stop_grace_period)
                        .await?;
                    engine.remove_container(&old.id, false).await?;
                }
                let mut spec = translate::container_spec(&ctx.project, service, number)?;
                if let Some(mode) = &namespace {
                    spec.body.host_config.get_or_insert_default().network_mode = Some(mode.clone());
                }
                let id = engine
                    .create_container(
                        &spec.name,
                        spec.body,
                        &spec.extra_networks,
                        spec.platform.as_deref(),
                    )
                    .await?;
                engine.inject_files(&id, &spec.files).await?;
                changed = true;
                created.push(id.clone());
                to_start.push(id.clone());
                ids.push(id);
            }
        }
    }
    Ok(Prepared {
        ids,
        to_start,
        created,
        changed,
        kept,
    })
}

/// Whether container `c` joined `namespace` (always, when there is none to join).
fn joins(c: &crate::engine::ContainerInfo, namespace: Option<&str>) -> bool {
    namespace.is_none_or(|ns| c.network_mode.as_deref() == Some(ns))
}

/// Starts the prepared containers; returns the ids of all of them.
pub(super) async fn launch(
    ctx: &Ctx,
    service: &Service,
    prepared: Prepared,
) -> Result<Vec<String>, ContainerError> {
    let engine = &ctx.engine;
    let name = &service.name;
    let wanted = service.replicas;
    if wanted == 0 {
        ctx.writes
            .set(name, ServiceState::Ready, "scaled to 0 replicas");
        ctx.progress[name].send_modify(|p| {
            p.started = true;
            p.healthy = true;
        });
        return Ok(Vec::new());
    }
    let Prepared {
        ids,
        to_start,
        changed,
        kept,
        ..
    } = prepared;
    ctx.writes
        .status(name, StatusWrite::ContainerIds(ids.clone()));
    if changed {
        ctx.progress[name].send_modify(|p| p.recreated = true);
    }
    let verb = if changed {
        "starting"
    } else if kept == wanted as usize {
        "running (unchanged)"
    } else {
        "starting (existing containers)"
    };
    // Containers that already run, unchanged, are taken over, not started:
    // followers (the grace recorder) must not take this for a start-up, as
    // for `serve`'s take-over of a running stack.
    let cause = (!changed && to_start.is_empty()).then_some(Cause::Adopted);
    ctx.writes
        .set_caused(name, ServiceState::Starting, verb, cause);
    let starts = to_start.iter().map(|id| engine.start_container(id));
    for r in futures_util::future::join_all(starts).await {
        r?;
    }
    Ok(ids)
}
