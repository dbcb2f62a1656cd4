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
//!
//! The spec is read and sent back as the Engine's JSON (`raw.rs`): only the
//! image, its label and the update settings change, so the service keeps its
//! healthcheck, which is what keeps a new task that runs but does not answer
//! out of Swarm's DNS and stops start-first from replacing an old task with
//! it. A service without one is warned about ([`Progress::NoHealthcheck`]).

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::compose::Project;
use crate::engine::Engine;

use super::cluster::{manager, summary, Progress};
use super::raw::{self, RawService};
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

/// The service as the Engine has it, or `NotDeployed`.
async fn current(engine: &Engine, name: &str, swarm_name: &str) -> Result<RawService, SwarmError> {
    raw::inspect_service(engine.host(), &engine.api_version(), swarm_name)
        .await?
        .ok_or_else(|| SwarmError::NotDeployed {
            service: name.to_string(),
            name: swarm_name.to_string(),
        })
}

fn image_of(spec: &Value) -> String {
    spec["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap_or_default()
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Whether the task template declares a healthcheck (not `NONE`). The
/// image's own `HEALTHCHECK` is not in the spec.
fn has_healthcheck(spec: &Value) -> bool {
    match &spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"] {
        Value::Array(test) => test.first().is_some_and(|t| t != "NONE"),
        _ => false,
    }
}

/// The spec of the update: `image`, its stack label, the update settings
/// from the flags, and `failure_action: pause` (muster decides about the
/// rollback). Every other field stays as Swarm has it.
fn updated_spec(spec: &Value, image: &str, options: &RolloutOptions) -> Value {
    let mut spec = spec.clone();
    *raw::member(&mut spec, &["TaskTemplate", "ContainerSpec", "Image"]) = image.into();
    *raw::member(&mut spec, &["Labels", spec::IMAGE]) = image.into();
    let update = raw::member(&mut spec, &["UpdateConfig"]);
    if let Some(p) = options.parallelism {
        *raw::member(update, &["Parallelism"]) = p.into();
    }
    if let Some(o) = &options.order {
        let order = match o.as_str() {
            "start-first" => "start-first",
            _ => "stop-first",
        };
        *raw::member(update, &["Order"]) = order.into();
    }
    if let Some(d) = options.delay {
        *raw::member(update, &["Delay"]) = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX).into();
    }
    *raw::member(update, &["FailureAction"]) = "pause".into();
    spec
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
    let found = current(engine, service, &swarm_name).await?;
    if !has_healthcheck(&found.spec) {
        progress(Progress::NoHealthcheck {
            service: service.to_string(),
        });
    }
    let from_image = image_of(&found.spec);
    let new_spec = updated_spec(&found.spec, image, options);
    raw::update_service(
        engine.host(),
        &engine.api_version(),
        &found,
        &new_spec,
        false,
    )
    .await?;

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
    let now = current(engine, service, &swarm_name).await?;
    raw::update_service(engine.host(), &engine.api_version(), &now, &now.spec, true)
        .await
        .map_err(|e| match e {
            SwarmError::Raw { detail, .. } => SwarmError::Raw {
                context: format!("rolling {swarm_name} back to {from_image}"),
                detail,
            },
            other => other,
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_update_changes_image_label_and_update_settings_and_keeps_the_healthcheck() {
        let spec = serde_json::json!({
            "Name": "shop_cache",
            "Labels": {"com.docker.stack.namespace": "shop"},
            "TaskTemplate": {"ContainerSpec": {
                "Image": "redis:1@sha256:abc",
                "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1000000000}
            }},
            "UpdateConfig": {"Parallelism": 1, "Order": "start-first"}
        });
        assert!(has_healthcheck(&spec));
        assert_eq!(image_of(&spec), "redis:1");
        let options = RolloutOptions {
            parallelism: Some(2),
            delay: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let new = updated_spec(&spec, "redis:2", &options);
        assert_eq!(new["TaskTemplate"]["ContainerSpec"]["Image"], "redis:2");
        assert_eq!(new["Labels"][spec::IMAGE], "redis:2");
        assert_eq!(new["Labels"][spec::NAMESPACE], "shop");
        assert_eq!(
            new["TaskTemplate"]["ContainerSpec"]["Healthcheck"],
            spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
        );
        let update = &new["UpdateConfig"];
        assert_eq!(update["Parallelism"], 2);
        assert_eq!(update["Order"], "start-first", "kept: no --order");
        assert_eq!(update["Delay"], 1_000_000_000_i64);
        assert_eq!(update["FailureAction"], "pause");

        let none = serde_json::json!({"TaskTemplate": {"ContainerSpec": {
            "Healthcheck": {"Test": ["NONE"]}}}});
        assert!(!has_healthcheck(&none));
        assert!(!has_healthcheck(&serde_json::json!({})));
    }
}
