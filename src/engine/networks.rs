//! Project networks, created and removed by the compose labels.

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptions;

use super::client::{is_status, Engine, EngineError};
use super::labels;
use crate::compose::{Network, Project};

/// The engine name of network `key` of the project: its `name:`, else the
/// key itself for an external network (compose-go normalize.go setNameFromKey),
/// else `{project}_{key}`.
pub fn network_name(project: &Project, key: &str) -> String {
    match project.networks.get(key) {
        Some(n) => match &n.name {
            Some(name) => name.clone(),
            None if n.external => key.to_string(),
            None => format!("{}_{key}", project.name),
        },
        None => format!("{}_{key}", project.name),
    }
}

/// The engine's IPAM settings for a network's `ipam:`.
fn engine_ipam(ipam: &crate::compose::Ipam) -> Ipam {
    let map = |m: &std::collections::BTreeMap<String, String>| {
        (!m.is_empty()).then(|| m.clone().into_iter().collect::<HashMap<_, _>>())
    };
    Ipam {
        driver: ipam.driver.clone(),
        config: (!ipam.config.is_empty()).then(|| {
            ipam.config
                .iter()
                .map(|p| IpamConfig {
                    subnet: p.subnet.clone(),
                    ip_range: p.ip_range.clone(),
                    gateway: p.gateway.clone(),
                    auxiliary_addresses: map(&p.aux_addresses),
                })
                .collect()
        }),
        options: map(&ipam.options),
    }
}

impl Engine {
    /// Creates network `key` unless it exists; an external one must exist.
    pub async fn ensure_network(
        &self,
        project: &Project,
        key: &str,
    ) -> Result<String, EngineError> {
        let spec = project.networks.get(key).cloned().unwrap_or_default();
        let name = network_name(project, key);
        match self
            .docker()
            .inspect_network(
                &name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => return Ok(name),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(EngineError::api(format!("inspect network {name}"), e)),
        }
        if spec.external {
            return Err(EngineError::NotFound {
                what: format!("external network {name} (declared as networks.{key})"),
            });
        }
        self.create_network(&project.name, key, &name, &spec)
            .await?;
        Ok(name)
    }

    async fn create_network(
        &self,
        project: &str,
        key: &str,
        name: &str,
        spec: &Network,
    ) -> Result<(), EngineError> {
        let mut net_labels = labels::network_labels(project, key);
        net_labels.extend(spec.labels.clone());
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some(spec.driver.clone().unwrap_or_else(|| "bridge".into())),
            internal: Some(spec.internal),
            attachable: Some(true),
            labels: Some(net_labels),
            options: (!spec.driver_opts.is_empty())
                .then(|| spec.driver_opts.clone().into_iter().collect()),
            ipam: spec.ipam.as_ref().map(engine_ipam),
            enable_ipv6: spec.enable_ipv6,
            ..Default::default()
        };
        match self.docker().create_network(request).await {
            Ok(_) => Ok(()),
            // Created meanwhile by a concurrent `up`.
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(EngineError::api(format!("create network {name}"), e)),
        }
    }

    /// Names of the networks labelled with the project.
    pub async fn list_project_networks(&self, project: &str) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![labels::project_filter(project)])]);
        let list = self
            .docker()
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| EngineError::api(format!("list networks of project {project}"), e))?;
        Ok(list.into_iter().filter_map(|n| n.name).collect())
    }

    pub async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.docker().remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(EngineError::api(format!("remove network {name}"), e)),
        }
    }
}
