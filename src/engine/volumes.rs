//! Project named volumes, created and removed by the compose labels.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};

use super::client::{is_status, Engine, EngineError};
use super::labels;
use crate::compose::Project;

/// The engine name of volume `key` (`{project}_{key}` unless `name:` is set or it is external).
pub fn volume_name(project: &Project, key: &str) -> String {
    match project.volumes.get(key) {
        Some(v) => match &v.name {
            Some(name) => name.clone(),
            None if v.external => key.to_string(),
            None => format!("{}_{key}", project.name),
        },
        None => format!("{}_{key}", project.name),
    }
}

impl Engine {
    /// Creates volume `key` unless it exists; an external one must exist.
    pub async fn ensure_volume(&self, project: &Project, key: &str) -> Result<String, EngineError> {
        let spec = project.volumes.get(key).cloned().unwrap_or_default();
        let name = volume_name(project, key);
        match self.docker().inspect_volume(&name).await {
            Ok(_) => return Ok(name),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(EngineError::api(format!("inspect volume {name}"), e)),
        }
        if spec.external {
            return Err(EngineError::NotFound {
                what: format!("external volume {name} (declared as volumes.{key})"),
            });
        }
        let mut vol_labels = labels::volume_labels(&project.name, key);
        vol_labels.extend(spec.labels.clone());
        self.docker()
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                driver: Some(spec.driver.clone().unwrap_or_else(|| "local".into())),
                labels: Some(vol_labels),
                driver_opts: (!spec.driver_opts.is_empty())
                    .then(|| spec.driver_opts.clone().into_iter().collect()),
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::api(format!("create volume {name}"), e))?;
        Ok(name)
    }

    /// Names of the volumes labelled with the project.
    pub async fn list_project_volumes(&self, project: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![labels::project_filter(project)])]);
        let list = self
            .docker()
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| EngineError::api(format!("list volumes of project {project}"), e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        match self
            .docker()
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(EngineError::api(format!("remove volume {name}"), e)),
        }
    }
}
