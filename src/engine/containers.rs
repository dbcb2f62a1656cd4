//! Containers: create, start, stop, remove, inspect, list by label, wait for exit.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, ContainerSummary, EndpointSettings};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use serde::Serialize;

use super::client::{is_status, Engine, EngineError};
use super::labels;

/// A published port as `docker ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedPort {
    pub host_ip: Option<String>,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: String,
}

impl std::fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host_port {
            Some(hp) => write!(
                f,
                "{}:{}->{}/{}",
                self.host_ip.as_deref().unwrap_or("0.0.0.0"),
                hp,
                self.container_port,
                self.protocol
            ),
            None => write!(f, "{}/{}", self.container_port, self.protocol),
        }
    }
}

/// One container of a project, from the list endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    /// `created`, `running`, `exited`, …
    pub state: String,
    /// Docker's status text (`Up 3 minutes (healthy)`).
    pub status: String,
    pub image: String,
    /// The ID (`sha256:…`) of the image the container was created from.
    pub image_id: String,
    pub config_hash: Option<String>,
    /// Services this one depends on (from the compose depends_on label).
    pub depends_on: Vec<String>,
    pub ports: Vec<PublishedPort>,
    /// Unix seconds.
    pub created: i64,
    pub labels: HashMap<String, String>,
    /// The engine's `HostConfig.NetworkMode`: a network name, `host`, or
    /// `container:<id>` for one that joined another container's namespace.
    pub network_mode: Option<String>,
}

impl ContainerInfo {
    fn from_summary(s: ContainerSummary) -> ContainerInfo {
        let labels = s.labels.unwrap_or_default();
        let name = s
            .names
            .and_then(|n| n.into_iter().next())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let mut ports: Vec<PublishedPort> = s
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| PublishedPort {
                host_ip: p.ip,
                host_port: p.public_port,
                container_port: p.private_port,
                protocol: p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into()),
            })
            .collect();
        ports.sort_by(|a, b| (a.container_port, &a.host_ip).cmp(&(b.container_port, &b.host_ip)));
        ports.dedup();
        ContainerInfo {
            id: s.id.unwrap_or_default(),
            name,
            service: labels.get(labels::SERVICE).cloned().unwrap_or_default(),
            number: labels
                .get(labels::CONTAINER_NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            state: s.state.map(|s| s.to_string()).unwrap_or_default(),
            status: s.status.unwrap_or_default(),
            image: s.image.unwrap_or_default(),
            image_id: s.image_id.unwrap_or_default(),
            config_hash: labels.get(labels::CONFIG_HASH).cloned(),
            depends_on: labels
                .get(labels::DEPENDS_ON)
                .map(|v| labels::parse_depends_on(v))
                .unwrap_or_default(),
            ports,
            created: s.created.unwrap_or(0),
            labels,
            network_mode: s.host_config.and_then(|h| h.network_mode),
        }
    }

    /// The health word from the status text (`healthy`, `unhealthy`, `starting`), if any.
    pub fn health(&self) -> Option<&'static str> {
        if self.status.contains("(healthy)") {
            Some("healthy")
        } else if self.status.contains("(unhealthy)") {
            Some("unhealthy")
        } else if self.status.contains("(health: starting)") {
            Some("starting")
        } else {
            None
        }
    }
}

/// What inspect says about a container's life.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerDetails {
    pub id: String,
    pub name: String,
    /// `created`, `running`, `exited`, …
    pub status: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    /// `starting`, `healthy`, `unhealthy`; `None` without a healthcheck.
    pub health: Option<super::Health>,
    pub has_healthcheck: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub labels: HashMap<String, String>,
}

impl ContainerDetails {
    /// StartedAt in nanoseconds since the epoch.
    pub fn started_at_ns(&self) -> Option<i128> {
        self.started_at.as_deref().and_then(super::parse_rfc3339_ns)
    }
}

impl Engine {
    /// Every container (running or not) labelled with the project, optionally one service.
    pub async fn list_project_containers(
        &self,
        project: &str,
        service: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        let mut label = vec![labels::project_filter(project)];
        if let Some(service) = service {
            label.push(format!("{}={service}", labels::SERVICE));
        }
        let filters = HashMap::from([("label".to_string(), label)]);
        let list = self
            .docker()
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| EngineError::api(format!("list containers of project {project}"), e))?;
        let mut out: Vec<ContainerInfo> =
            list.into_iter().map(ContainerInfo::from_summary).collect();
        out.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        Ok(out)
    }

    /// Creates a container; `extra_networks` are connected after create (API < 1.44
    /// accepts only one network at create time). `platform` (`linux/arm64`) is
    /// create's platform parameter: the engine refuses an image of another one.
    pub async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
        extra_networks: &[(String, EndpointSettings)],
        platform: Option<&str>,
    ) -> Result<String, EngineError> {
        let image = body.image.clone().unwrap_or_default();
        let created = self
            .docker()
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_string()),
                    platform: platform.unwrap_or_default().to_string(),
                }),
                body,
            )
            .await
            .map_err(|e| {
                // A local image of another platform is a 404 whose message
                // says so: keep the engine's words, not "not on the engine".
                let wrong_platform = platform.is_some() && e.to_string().contains("platform");
                if is_status(&e, 404) && !wrong_platform {
                    EngineError::NotFound {
                        what: format!("image {image} (not on the engine: `muster pull` or `up --pull missing` fetches it)"),
                    }
                } else {
                    EngineError::api(format!("create container {name}"), e)
                }
            })?;
        for (network, endpoint) in extra_networks {
            self.docker()
                .connect_network(
                    network,
                    bollard::models::NetworkConnectRequest {
                        container: created.id.clone(),
                        endpoint_config: Some(endpoint.clone()),
                    },
                )
                .await
                .map_err(|e| {
                    EngineError::api(format!("connect container {name} to network {network}"), e)
                })?;
        }
        Ok(created.id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        match self.docker().start_container(id, None).await {
            Ok(()) => Ok(()),
            // 304: already started.
            Err(e) if is_status(&e, 304) => Ok(()),
            Err(e) => Err(EngineError::api(format!("start container {id}"), e)),
        }
    }

    /// Stops with the container's own stop signal; `timeout` overrides its StopTimeout.
    pub async fn stop_container(
        &self,
        id: &str,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), EngineError> {
        let options = StopContainerOptions {
            t: timeout.map(|t| t.as_secs().min(i32::MAX as u64) as i32),
            signal: None,
        };
        match self.docker().stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 304) || is_status(&e, 404) => Ok(()),
            Err(e) => Err(EngineError::api(format!("stop container {id}"), e)),
        }
    }

    /// Sends SIGKILL (a container that is not running is not an error).
    pub async fn kill_container(&self, id: &str) -> Result<(), EngineError> {
        let options = bollard::query_parameters::KillContainerOptionsBuilder::new()
            .signal("SIGKILL")
            .build();
        match self.docker().kill_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 304) || is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(EngineError::api(format!("kill container {id}"), e)),
        }
    }

    /// Removes a container (forced: a running one is killed); anonymous volumes too when `volumes`.
    pub async fn remove_container(&self, id: &str, volumes: bool) -> Result<(), EngineError> {
        let options = RemoveContainerOptions {
            force: true,
            v: volumes,
            link: false,
        };
        match self.docker().remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            // 409: removal already in progress.
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(EngineError::api(format!("remove container {id}"), e)),
        }
    }

    pub async fn inspect_container(&self, id: &str) -> Result<ContainerDetails, EngineError> {
        let c = self
            .docker()
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| {
                if is_status(&e, 404) {
                    EngineError::NotFound {
                        what: format!("container {id}"),
                    }
                } else {
                    EngineError::api(format!("inspect container {id}"), e)
                }
            })?;
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let has_healthcheck = config
            .healthcheck
            .as_ref()
            .and_then(|h| h.test.as_deref())
            .is_some_and(super::declares_healthcheck);
        let health = super::health_status(state.health.and_then(|h| h.status));
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        Ok(ContainerDetails {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            running: state.running.unwrap_or(false),
            exit_code: if status == "exited" || status == "dead" {
                state.exit_code
            } else {
                None
            },
            status,
            health,
            has_healthcheck,
            started_at: state.started_at.filter(|s| !s.starts_with("0001-")),
            finished_at: state.finished_at.filter(|s| !s.starts_with("0001-")),
            error: state.error.filter(|e| !e.is_empty()),
            labels: config.labels.unwrap_or_default(),
        })
    }

    /// The network namespace a container with `network_mode` joins, as the
    /// engine stores it: `container:<id>`. For `service:X`, X's running
    /// container with the lowest number (a rollout gives new containers fresh
    /// numbers, so `{project}-X-1` may be gone); for `container:NAME`, that
    /// container. `None` for other modes, or while there is no such container
    /// (a create then fails with the engine's own message). `up`, rollouts and
    /// the dependents that follow X all resolve it here.
    pub async fn shared_namespace(
        &self,
        project: &str,
        mode: Option<&str>,
    ) -> Result<Option<String>, EngineError> {
        let Some(mode) = mode else {
            return Ok(None);
        };
        if let Some(owner) = mode.strip_prefix("service:") {
            let list = self.list_project_containers(project, Some(owner)).await?;
            let running = list.iter().filter(|c| c.state == "running");
            let pick = running
                .min_by_key(|c| c.number)
                .or_else(|| list.iter().min_by_key(|c| c.number));
            return Ok(pick.map(|c| format!("container:{}", c.id)));
        }
        if let Some(name) = mode.strip_prefix("container:") {
            return match self.inspect_container(name).await {
                Ok(details) => Ok(Some(format!("container:{}", details.id))),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            };
        }
        Ok(None)
    }

    /// Waits until the container is not running and returns its exit code.
    pub async fn wait_container(&self, id: &str) -> Result<i64, EngineError> {
        let mut stream = self.docker().wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(EngineError::api(format!("wait for container {id}"), e)),
            None => Err(EngineError::NotFound {
                what: format!("exit status of container {id}"),
            }),
        }
    }
}
