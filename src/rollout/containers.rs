//! What a rollout needs from the engine beyond `src/engine`: a fuller view of
//! one container (its revision label, addresses and aliases per network,
//! health), and the two network moves that put a container into the
//! service's DNS name and take it out again.
//!
//! Docker's embedded DNS answers a service name with every container that
//! holds it as a network alias, and an alias can only be set when a container
//! connects to a network. So:
//!
//! - a new container is created *without* the service's aliases (reachable by
//!   its own name only), and *joins* once it is ready: disconnect, connect
//!   again with the aliases;
//! - an old container is *unpublished* before it stops: disconnect, connect
//!   again without the aliases. The engine hands the address just released
//!   straight back (its allocator takes the first free address), so
//!   connections that were open keep working through TCP retransmission, and
//!   the container keeps serving them for the drain period.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerInspectResponse, EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest,
};
use futures_util::StreamExt;
use serde::Serialize;

use super::revisions::REVISION_LABEL;
use crate::engine::translate::ContainerSpec;
use crate::engine::{labels, Engine, EngineError};

/// One container of the service as the rollout sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    pub id: String,
    pub name: String,
    pub number: u32,
    /// `io.muster.revision`, when a rollout made the container.
    pub revision: Option<u64>,
    pub running: bool,
    /// `created`, `running`, `exited`, …
    pub status: String,
    pub exit_code: Option<i64>,
    pub health: Option<crate::engine::Health>,
    /// The last healthcheck output, for reasons.
    pub health_output: Option<String>,
    pub has_healthcheck: bool,
    pub hostname: String,
    pub image: String,
    pub config_hash: Option<String>,
    /// network name -> (address, aliases).
    pub networks: BTreeMap<String, (String, Vec<String>)>,
}

impl Observed {
    fn from_inspect(c: ContainerInspectResponse) -> Observed {
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let labels_map = config.labels.clone().unwrap_or_default();
        let has_healthcheck = config
            .healthcheck
            .as_ref()
            .and_then(|h| h.test.as_deref())
            .is_some_and(crate::engine::declares_healthcheck);
        let (health, health_output) = match state.health {
            Some(h) => (
                crate::engine::health_status(h.status),
                h.log
                    .and_then(|l| l.last().cloned())
                    .and_then(|l| l.output)
                    .map(|o| crate::probe::tail(&o, 200))
                    .filter(|o| !o.is_empty()),
            ),
            None => (None, None),
        };
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        let networks = c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, ep)| {
                (
                    name,
                    (
                        ep.ip_address.unwrap_or_default(),
                        ep.aliases.unwrap_or_default(),
                    ),
                )
            })
            .collect();
        Observed {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            number: labels_map
                .get(labels::CONTAINER_NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            revision: labels_map.get(REVISION_LABEL).and_then(|n| n.parse().ok()),
            running: state.running.unwrap_or(false),
            exit_code: if status == "exited" || status == "dead" {
                state.exit_code
            } else {
                None
            },
            status,
            health,
            health_output,
            has_healthcheck,
            hostname: config.hostname.unwrap_or_default(),
            image: config.image.unwrap_or_default(),
            config_hash: labels_map.get(labels::CONFIG_HASH).cloned(),
            networks,
        }
    }

    /// The networks on which the container holds `alias` (the service's DNS name).
    pub fn aliased_networks(&self, alias: &str) -> Vec<String> {
        self.networks
            .iter()
            .filter(|(_, (_, aliases))| aliases.iter().any(|a| a == alias))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// True when the container answers to `alias` on some network.
    pub fn serves_as(&self, alias: &str) -> bool {
        !self.aliased_networks(alias).is_empty()
    }

    /// The container's address on `network`, else on any network.
    pub fn address(&self, network: Option<&str>) -> Option<String> {
        network
            .and_then(|n| self.networks.get(n))
            .or_else(|| self.networks.values().next())
            .map(|(ip, _)| ip.clone())
            .filter(|ip| !ip.is_empty())
    }
}

/// Inspects one container.
pub async fn inspect(engine: &Engine, id: &str) -> Result<Observed, EngineError> {
    let c = engine
        .docker()
        .inspect_container(id, None)
        .await
        .map_err(|e| match &e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => EngineError::NotFound {
                what: format!("container {id}"),
            },
            _ => EngineError::Api {
                context: format!("inspect container {id}"),
                source: e,
            },
        })?;
    Ok(Observed::from_inspect(c))
}

/// Every container of the service (running or not), by number.
pub async fn observe(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<Vec<Observed>, EngineError> {
    let mut out = Vec::new();
    for c in engine
        .list_project_containers(project, Some(service))
        .await?
    {
        match inspect(engine, &c.id).await {
            Ok(o) => out.push(o),
            // Removed between list and inspect.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|c| c.number);
    Ok(out)
}

/// The networks a container of `spec` joins, with the endpoint settings
/// (aliases included) translate.rs gives them.
pub fn endpoints(spec: &ContainerSpec) -> Vec<(String, EndpointSettings)> {
    let mut out: Vec<(String, EndpointSettings)> = spec
        .body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    out.extend(spec.extra_networks.iter().cloned());
    out
}

/// `spec` with every network alias removed: the container is created out of
/// the service's DNS name (its own name still resolves).
pub fn without_aliases(mut spec: ContainerSpec) -> ContainerSpec {
    if let Some(eps) = spec
        .body
        .networking_config
        .as_mut()
        .and_then(|n| n.endpoints_config.as_mut())
    {
        for ep in eps.values_mut() {
            ep.aliases = None;
        }
    }
    for (_, ep) in spec.extra_networks.iter_mut() {
        ep.aliases = None;
    }
    spec
}

async fn reconnect(
    engine: &Engine,
    id: &str,
    network: &str,
    endpoint: EndpointSettings,
) -> Result<(), EngineError> {
    let docker = engine.docker();
    match docker
        .disconnect_network(
            network,
            NetworkDisconnectRequest {
                container: id.to_string(),
                force: Some(false),
            },
        )
        .await
    {
        Ok(()) => {}
        // Not connected (an interrupted earlier move): connect below.
        Err(bollard::errors::Error::DockerResponseServerError { message, .. })
            if message.contains("is not connected") => {}
        Err(e) => {
            return Err(EngineError::Api {
                context: format!("disconnect {} from network {network}", short(id)),
                source: e,
            })
        }
    }
    docker
        .connect_network(
            network,
            NetworkConnectRequest {
                container: id.to_string(),
                endpoint_config: Some(endpoint),
            },
        )
        .await
        .map_err(|e| EngineError::Api {
            context: format!("connect {} to network {network}", short(id)),
            source: e,
        })
}

/// Puts a ready container into the service's DNS name on every network.
/// Returns its addresses (`net=ip`), for the progress line.
pub async fn join(
    engine: &Engine,
    id: &str,
    endpoints: &[(String, EndpointSettings)],
) -> Result<String, EngineError> {
    let before = inspect(engine, id).await?;
    let mut addresses = Vec::new();
    for (network, endpoint) in endpoints {
        // The engine hands the released address straight back (first free).
        reconnect(engine, id, network, endpoint.clone()).await?;
        let after = inspect(engine, id).await?;
        let old = before.networks.get(network).map(|(ip, _)| ip.clone());
        let new = after
            .networks
            .get(network)
            .map(|(ip, _)| ip.clone())
            .unwrap_or_default();
        if old.as_deref().is_some_and(|o| !o.is_empty() && o != new) {
            tracing::info!(container = %before.name, network, old = ?old, new = %new, "address changed when joining");
        }
        addresses.push(format!("{network}={new}"));
    }
    Ok(addresses.join(", "))
}

/// Takes a container out of the service's DNS name on every network, keeping
/// it connected (by its own name) so it can finish what it serves.
pub async fn unpublish(engine: &Engine, id: &str, networks: &[String]) -> Result<(), EngineError> {
    for network in networks {
        reconnect(engine, id, network, EndpointSettings::default()).await?;
    }
    Ok(())
}

/// Why a command could not be run inside a container (a command that ran
/// and failed is not an error: its exit code is returned).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{step} in {container}: {source}")]
    Engine {
        step: &'static str,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("did not finish within {0}")]
    Timeout(String),
}

/// Runs `sh -c command` inside a container; the exit code and the output's tail.
pub async fn exec_shell(
    engine: &Engine,
    id: &str,
    command: &str,
    env: Vec<String>,
    timeout: Duration,
) -> Result<(i64, String), ExecError> {
    let fail = |step: &'static str| {
        move |source| ExecError::Engine {
            step,
            container: short(id).to_string(),
            source,
        }
    };
    let docker = engine.docker();
    let run = async {
        let exec = docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(vec![
                        "sh".to_string(),
                        "-c".to_string(),
                        command.to_string(),
                    ]),
                    env: Some(env),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(fail("exec"))?;
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut s, .. } = docker
            .start_exec(&exec.id, None)
            .await
            .map_err(fail("exec start"))?
        {
            while let Some(chunk) = s.next().await {
                match chunk {
                    Ok(log) if output.len() < 16 * 1024 => {
                        output.push_str(&String::from_utf8_lossy(&log.into_bytes()))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(fail("exec output")(e)),
                }
            }
        }
        let code = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(fail("exec inspect"))?
            .exit_code
            .unwrap_or(-1);
        Ok((code, crate::probe::tail(&output, 200)))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(ExecError::Timeout(crate::duration::format(timeout))),
    }
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
