//! Connecting to the engine, and the one error type of the engine layer.

use std::time::Duration;

use bollard::Docker;

use crate::error_text::error_chain;

/// Default socket when `DOCKER_HOST` is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {host}: {detail} (is dockerd running? DOCKER_HOST selects another engine)")]
    Unreachable { host: String, detail: String },
    #[error("permission denied on the Docker socket {host}: run as a user in the `docker` group, or point DOCKER_HOST at an engine you may use")]
    PermissionDenied { host: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what}: no answer from the Docker engine within {after:?}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },
    #[error("{context}: {source}")]
    Api {
        context: String,
        #[source]
        source: bollard::errors::Error,
    },
}

impl EngineError {
    pub(crate) fn api(context: impl Into<String>, source: bollard::errors::Error) -> EngineError {
        EngineError::Api {
            context: context.into(),
            source,
        }
    }

    /// True for a 404 from the engine (or a [`EngineError::NotFound`]).
    pub fn is_not_found(&self) -> bool {
        match self {
            EngineError::NotFound { .. } => true,
            EngineError::Api { source, .. } => is_status(source, 404),
            _ => false,
        }
    }
}

pub(crate) fn is_status(err: &bollard::errors::Error, code: u16) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// A connected engine. Cheap to clone (bollard shares the connection pool).
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    host: String,
}

impl Engine {
    /// Connects through `DOCKER_HOST`, else `/var/run/docker.sock`, negotiates the
    /// API version and pings, so an unreachable engine fails here with a clear error.
    pub async fn connect() -> Result<Engine, EngineError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Self::connect_to(&host).await
    }

    /// Connects to one host (`unix:///path`, `tcp://host:port`, `http://…`).
    pub async fn connect_to(host: &str) -> Result<Engine, EngineError> {
        if let Some(path) = host.strip_prefix("unix://") {
            let path = std::path::Path::new(path);
            if !path.exists() {
                return Err(EngineError::Unreachable {
                    host: host.to_string(),
                    detail: "socket does not exist".into(),
                });
            }
        }
        let unreachable = |detail: String| {
            if detail.to_lowercase().contains("permission denied") {
                EngineError::PermissionDenied {
                    host: host.to_string(),
                }
            } else {
                EngineError::Unreachable {
                    host: host.to_string(),
                    detail,
                }
            }
        };
        let docker = Docker::connect_with_host(host).map_err(|e| unreachable(error_chain(&e)))?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unreachable("no answer within 10s".into()))?
            .map_err(|e| unreachable(error_chain(&e)))?;
        docker
            .ping()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        Ok(Engine {
            docker,
            host: host.to_string(),
        })
    }

    /// The raw bollard client, for what this layer does not wrap.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The negotiated API version (`1.41`).
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }
}
