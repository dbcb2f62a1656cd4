//! Services in X's network namespace (`network_mode: service:X`) follow a
//! rollout or rollback of X.
//!
//! The engine stores the namespace as `container:<id>`. A rollout replaces
//! X's containers, so when it ends the dependents sit in a namespace that is
//! gone (and a restart would rejoin it: the dockhand #991 report). Each
//! dependent container that does not join X's current container is recreated
//! under its own name and number, keeping what a rollout of the dependent
//! itself may have changed (image, environment, labels with its revision), and
//! pointed at X's current container.

use bollard::query_parameters::InspectContainerOptions;

use super::containers::short;
use super::*;
use crate::engine::translate;

impl Rollouts {
    /// Recreates the containers of the services that join `owner`'s network
    /// namespace and do not join its current container. Failures are reported
    /// as warnings: the rollout of `owner` itself is done.
    pub(super) async fn rejoin_dependents(&self, owner: &str) {
        let mode = format!("service:{owner}");
        let joined: Vec<&Service> = self
            .project
            .services
            .values()
            .filter(|s| s.network_mode.as_deref() == Some(mode.as_str()))
            .collect();
        for service in joined {
            if let Err(message) = self.rejoin(service).await {
                self.reporter(&service.name, None)
                    .report(EventKind::Warning {
                        message: format!(
                            "{} joins the network namespace of {owner} and could not be recreated to follow it: {message}",
                            service.name
                        ),
                    })
                    .await;
            }
        }
    }

    async fn rejoin(&self, service: &Service) -> Result<(), String> {
        let engine = &self.engine;
        let project = &self.project.name;
        let Some(namespace) = engine
            .shared_namespace(project, service.network_mode.as_deref())
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let containers = engine
            .list_project_containers(project, Some(&service.name))
            .await
            .map_err(|e| e.to_string())?;
        for old in containers {
            if old.network_mode.as_deref() == Some(namespace.as_str()) {
                continue;
            }
            let was = engine
                .docker()
                .inspect_container(&old.id, None::<InspectContainerOptions>)
                .await
                .map_err(|e| format!("inspect {}: {e}", old.name))?
                .config
                .unwrap_or_default();
            let mut spec = translate::container_spec(&self.project, service, old.number)
                .map_err(|e| e.to_string())?;
            if was.image.is_some() {
                spec.body.image = was.image;
            }
            if was.env.is_some() {
                spec.body.env = was.env;
            }
            if was.labels.is_some() {
                spec.body.labels = was.labels;
            }
            spec.body.host_config.get_or_insert_default().network_mode = Some(namespace.clone());
            engine
                .stop_container(&old.id, service.stop_grace_period)
                .await
                .map_err(|e| format!("stop {}: {e}", old.name))?;
            engine
                .remove_container(&old.id, false)
                .await
                .map_err(|e| format!("remove {}: {e}", old.name))?;
            let id = engine
                .create_container(
                    &spec.name,
                    spec.body,
                    &spec.extra_networks,
                    spec.platform.as_deref(),
                )
                .await
                .map_err(|e| format!("create {}: {e}", spec.name))?;
            engine
                .start_container(&id)
                .await
                .map_err(|e| format!("start {}: {e}", spec.name))?;
            tracing::info!(service = %service.name, container = %spec.name, %namespace, "recreated to join the namespace's new container");
            let owner = namespace.trim_start_matches("container:");
            self.reporter(&service.name, None)
                .report(EventKind::Rejoined {
                    container: spec.name,
                    namespace: format!("container {}", short(owner)),
                })
                .await;
        }
        Ok(())
    }
}
