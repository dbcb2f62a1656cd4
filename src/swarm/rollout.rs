//! `muster rollout SERVICE --image REF --swarm`: Swarm's own rolling update,
//! gated on muster's probes of the new tasks, and Swarm's own rollback when
//! they do not become ready.
//!
//! Why: Swarm's update watches only container state and healthchecks; it
//! cannot tell that a new Redis task never answers PING. muster asks Swarm to
//! update the service (parallelism, order, delay from the flags or
//! `deploy.update_config`), probes every task of the new image at its overlay
//! address, and when the required number is not ready in time (or Swarm
//! rejects the new tasks) asks Swarm to roll back to the previous spec, then
//! waits until the old image's tasks are ready again.

use std::time::{Duration, Instant};

use bollard::models::{ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum};
use bollard::query_parameters::{InspectServiceOptions, UpdateServiceOptions};
use serde::Serialize;

use crate::compose::Project;
use crate::engine::Engine;

use super::cluster::{manager, summary, Progress};
use super::readiness::{gating_probes, TaskState};
use super::watch::TaskWatch;
use super::{spec, SwarmError};

/// What `rollout --swarm` takes besides the service and image.
#[derive(Debug, Clone, Default)]
pub struct RolloutOptions {
    pub parallelism: Option<u32>,
    /// `start-first` or `stop-first`.
    pub order: Option<String>,
    pub delay: Option<Duration>,
    /// How long the new tasks have to become ready [default: 60 s].
    pub deadline: Option<Duration>,
}

/// The outcome of a rollout that completed.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    pub service: String,
    pub name: String,
    pub from_image: String,
    pub to_image: String,
    pub tasks: Vec<TaskState>,
    pub elapsed_ms: u64,
}

fn api(context: String) -> impl FnOnce(bollard::errors::Error) -> SwarmError {
    move |source| SwarmError::Api { context, source }
}

/// The service's current version and spec, or `NotDeployed`.
async fn current(
    engine: &Engine,
    name: &str,
    swarm_name: &str,
) -> Result<(i32, bollard::models::ServiceSpec), SwarmError> {
    let found = engine
        .docker()
        .inspect_service(swarm_name, None::<InspectServiceOptions>)
        .await
        .map_err(|_| SwarmError::NotDeployed {
            service: name.to_string(),
            name: swarm_name.to_string(),
        })?;
    let version = found.version.and_then(|v| v.index).unwrap_or_default();
    Ok((
        i32::try_from(version).unwrap_or(i32::MAX),
        found.spec.unwrap_or_default(),
    ))
}

fn image_of(spec: &bollard::models::ServiceSpec) -> String {
    spec.task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Rolls `service` of `project` to `image` on the swarm `engine` manages.
pub async fn rollout(
    engine: &Engine,
    project: &Project,
    service: &str,
    image: &str,
    options: &RolloutOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<RolloutReport, SwarmError> {
    let began = Instant::now();
    let manager = manager(engine).await?;
    let svc = project.service(service)?;
    let probes = svc
        .muster
        .as_ref()
        .map(|m| m.probes.as_slice())
        .unwrap_or_default();
    let gating = gating_probes(service, probes)?;
    let swarm_name = spec::scoped(&project.name, service);
    let (version, mut new_spec) = current(engine, service, &swarm_name).await?;
    let from_image = image_of(&new_spec);
    if let Some(c) = new_spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
    {
        c.image = Some(image.to_string());
    }
    new_spec
        .labels
        .get_or_insert_with(Default::default)
        .insert(spec::IMAGE.into(), image.to_string());
    let update = new_spec.update_config.get_or_insert_with(Default::default);
    if let Some(p) = options.parallelism {
        update.parallelism = Some(i64::from(p));
    }
    if let Some(o) = &options.order {
        update.order = Some(match o.as_str() {
            "start-first" => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
            _ => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
        });
    }
    if let Some(d) = options.delay {
        update.delay = Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    }
    // muster decides about the rollback: Swarm pauses on its own failures.
    update.failure_action = Some(ServiceSpecUpdateConfigFailureActionEnum::PAUSE);
    engine
        .docker()
        .update_service(
            &swarm_name,
            new_spec,
            UpdateServiceOptions {
                version,
                registry_auth_from: "spec".into(),
                rollback: None,
            },
            None,
        )
        .await
        .map_err(api(format!("updating service {swarm_name} to {image}")))?;

    let mut watch = TaskWatch::new(
        engine,
        &manager,
        project,
        svc,
        &swarm_name,
        gating,
        progress,
    );
    let deadline = options.deadline.unwrap_or(Duration::from_secs(60));
    let started = Instant::now();
    let new_image = |t: &super::tasks::TaskView| t.image == image;
    let failure = loop {
        let states = watch.poll(new_image).await?;
        let required = watch.required(&states);
        let ready = states.iter().filter(|s| s.ready).count();
        if ready >= required {
            progress(Progress::Ready {
                service: service.to_string(),
                ready,
                required,
            });
            return Ok(RolloutReport {
                service: service.to_string(),
                name: swarm_name,
                from_image,
                to_image: image.to_string(),
                tasks: states,
                elapsed_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        let rejected = states.iter().filter(|s| s.task.is_rejected()).count();
        if rejected >= (2 * required).max(2) || started.elapsed() >= deadline {
            break summary(&states);
        }
        tokio::time::sleep(watch.period()).await;
    };

    // Swarm's own rollback to the previous spec, then wait for the old image.
    let (version, spec_now) = current(engine, service, &swarm_name).await?;
    engine
        .docker()
        .update_service(
            &swarm_name,
            spec_now,
            UpdateServiceOptions {
                version,
                registry_auth_from: "spec".into(),
                rollback: Some("previous".into()),
            },
            None,
        )
        .await
        .map_err(api(format!("rolling {swarm_name} back to {from_image}")))?;
    let old_image = |t: &super::tasks::TaskView| t.image == from_image;
    let restored = loop {
        let states = watch.poll(old_image).await?;
        let required = watch.required(&states);
        let ready = states.iter().filter(|s| s.ready).count();
        if ready >= required {
            break format!("{ready} of its tasks are ready again");
        }
        if started.elapsed() >= deadline * 3 {
            break format!(
                "only {ready} of {required} tasks are ready yet: {}",
                summary(&states)
            );
        }
        tokio::time::sleep(watch.period()).await;
    };
    Err(SwarmError::RolledBack(Box::new(super::RolledBack {
        service: service.to_string(),
        image: image.to_string(),
        after: deadline,
        failure,
        previous: from_image,
        restored,
    })))
}
