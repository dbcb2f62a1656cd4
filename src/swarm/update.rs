//! Creating a Swarm service, or updating one that already exists when the
//! compose file changed (image, environment, replicas, any key muster
//! converts), on a re-run of `up --swarm`.
//!
//! Why a hash label: the spec Swarm returns is normalised (defaults filled
//! in), so comparing it with the spec muster builds would always differ.
//! muster labels each service with the sha256 of the spec it built
//! ([`SPEC_HASH`]); a re-run updates the service (at its current version
//! index, as `docker service update` does) only when that hash changed, and
//! leaves the others alone. A `rollout --swarm` keeps the label, so a re-run
//! with an unchanged file does not undo a rollout.

use std::time::Duration;

use bollard::models::ServiceSpec;
use bollard::query_parameters::{InspectServiceOptions, UpdateServiceOptions};
use sha2::{Digest, Sha256};

use super::cluster::api;
use super::SwarmError;
use crate::engine::Engine;

/// The label that carries the hash of the spec muster built.
pub const SPEC_HASH: &str = "io.muster.spec-hash";

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    /// Existed with another spec: updated, and Swarm's update completed.
    Updated,
    Unchanged,
}

/// sha256 (hex) of `spec` as canonical JSON (object keys sorted).
pub fn spec_hash(spec: &ServiceSpec) -> String {
    let json = serde_json::to_value(spec)
        .map(|v| v.to_string())
        .unwrap_or_default();
    Sha256::digest(json.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates the service, or updates it when its spec hash changed.
pub async fn apply(engine: &Engine, mut spec: ServiceSpec) -> Result<Change, SwarmError> {
    let name = spec.name.clone().unwrap_or_default();
    let hash = spec_hash(&spec);
    spec.labels
        .get_or_insert_with(Default::default)
        .insert(SPEC_HASH.into(), hash.clone());
    let docker = engine.docker();
    let Ok(found) = docker
        .inspect_service(&name, None::<InspectServiceOptions>)
        .await
    else {
        docker
            .create_service(spec, None)
            .await
            .map_err(api(format!("creating service {name}")))?;
        return Ok(Change::Created);
    };
    let current = found
        .spec
        .as_ref()
        .and_then(|s| s.labels.as_ref())
        .and_then(|l| l.get(SPEC_HASH));
    if current == Some(&hash) {
        return Ok(Change::Unchanged);
    }
    let version = found.version.and_then(|v| v.index).unwrap_or_default();
    update_at(engine, &name, spec, version).await?;
    wait_update(engine, &name).await?;
    Ok(Change::Updated)
}

/// Swarm's service update of `name` to `spec` at the `version` index the
/// caller read (a concurrent change makes Swarm refuse it).
pub async fn update_at(
    engine: &Engine,
    name: &str,
    spec: ServiceSpec,
    version: u64,
) -> Result<(), SwarmError> {
    engine
        .docker()
        .update_service(
            name,
            spec,
            UpdateServiceOptions {
                version: i32::try_from(version).unwrap_or(i32::MAX),
                registry_auth_from: "spec".into(),
                rollback: None,
            },
            None,
        )
        .await
        .map_err(api(format!("updating service {name}")))?;
    Ok(())
}

/// Waits until Swarm's update of `name` completed; a paused or rolled-back
/// update is an error with Swarm's message.
async fn wait_update(engine: &Engine, name: &str) -> Result<(), SwarmError> {
    loop {
        let found = engine
            .docker()
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
            .map_err(api(format!("inspecting service {name}")))?;
        let status = found.update_status.unwrap_or_default();
        let state = status.state.map(|s| s.to_string()).unwrap_or_default();
        match state.as_str() {
            // No update status: the change needed no task replaced (e.g. replicas).
            "" | "completed" => return Ok(()),
            "updating" => {}
            _ => {
                return Err(SwarmError::UpdateFailed {
                    service: name.to_string(),
                    state,
                    message: status.message.unwrap_or_default(),
                })
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_label_order_and_sees_every_change() {
        let mut a = ServiceSpec {
            name: Some("s_api".into()),
            labels: Some([("x".to_string(), "1".to_string()), ("y".into(), "2".into())].into()),
            ..Default::default()
        };
        let b = ServiceSpec {
            labels: Some([("y".to_string(), "2".to_string()), ("x".into(), "1".into())].into()),
            ..a.clone()
        };
        assert_eq!(spec_hash(&a), spec_hash(&b));
        a.name = Some("s_web".into());
        assert_ne!(spec_hash(&a), spec_hash(&b));
    }
}
