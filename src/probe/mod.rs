//! Readiness probes. Every kind implements [`Probe`] and reports one [`ProbeOutcome`].
//!
//! What the kinds share lives here (the outcome, the [`Failure`] a check ends
//! with, the container lookup and Engine error text of the exec and docker
//! probes), so each kind's file depends on this module rather than on another
//! kind's file. The probes' settings are the compose schema's
//! ([`crate::compose::xmuster`]).

pub mod agent;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::compose::xmuster::{ProbeKind, ProbeSpec};

/// A boxed future, so probes of different kinds can live in one `Vec<Box<dyn Probe>>`.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ProbeOutcome> + Send + 'a>>;

/// One probe target. `check` must return within the probe's timeout: the runner
/// also wraps it in `tokio::time::timeout` and reports [`ProbeStatus::Timeout`].
pub trait Probe: Send + Sync {
    /// Short kind name: `redis`, `nats`, `http`, `tcp`, `exec`, `docker`, `agent`.
    fn kind(&self) -> &'static str;
    /// What is probed, for humans (`redis://redis:6379`, secrets removed).
    fn target(&self) -> String;
    /// Runs one check.
    fn check(&mut self) -> ProbeFuture<'_>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    Ok,
    Fail,
    Timeout,
}

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    pub status: ProbeStatus,
    /// Why it failed (empty when ok, or a short detail such as "PONG").
    pub reason: String,
    #[serde(with = "crate::duration::serde_dur")]
    pub latency: Duration,
    /// Wall-clock time the check finished, unix milliseconds.
    pub at_ms: u64,
    /// The target itself says it is (re)starting (an agent's `starting`
    /// signal): not ready, and a service that was ready goes back to
    /// `starting` with a new start window instead of counting failures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarting: bool,
}

impl ProbeOutcome {
    pub fn ok(latency: Duration, detail: impl Into<String>) -> Self {
        Self::new(ProbeStatus::Ok, latency, detail)
    }

    pub fn fail(latency: Duration, reason: impl Into<String>) -> Self {
        Self::new(ProbeStatus::Fail, latency, reason)
    }

    /// Not ready because the target says it is starting (see [`Self::restarting`]).
    pub fn starting(latency: Duration, reason: impl Into<String>) -> Self {
        ProbeOutcome {
            restarting: true,
            ..Self::new(ProbeStatus::Fail, latency, reason)
        }
    }

    pub fn timeout(latency: Duration) -> Self {
        Self::new(
            ProbeStatus::Timeout,
            latency,
            format!("timed out after {}", crate::duration::format(latency)),
        )
    }

    fn new(status: ProbeStatus, latency: Duration, reason: impl Into<String>) -> Self {
        ProbeOutcome {
            status,
            reason: reason.into(),
            latency,
            at_ms: crate::clock::now_ms(),
            restarting: false,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == ProbeStatus::Ok
    }
}

/// A failed check: a plain failure or a timeout, with the reason.
pub(crate) struct Failure {
    pub timeout: bool,
    pub reason: String,
    /// The connection broke under the request; a fresh one may succeed.
    pub retryable: bool,
}

impl Failure {
    pub(crate) fn fail(reason: impl Into<String>) -> Failure {
        Failure {
            timeout: false,
            reason: reason.into(),
            retryable: false,
        }
    }

    pub(crate) fn timed_out(reason: impl Into<String>) -> Failure {
        Failure {
            timeout: true,
            reason: reason.into(),
            retryable: false,
        }
    }

    pub(crate) fn outcome(self, latency: Duration) -> ProbeOutcome {
        if self.timeout {
            let mut outcome = ProbeOutcome::timeout(latency);
            outcome.reason = self.reason;
            outcome
        } else {
            ProbeOutcome::fail(latency, self.reason)
        }
    }
}

/// A DNS failure reason when an error text says the name did not resolve.
pub(crate) fn dns_reason(lower: &str, host: &str) -> Option<String> {
    let dns = lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
        || lower.contains("no such host")
        || lower.contains("nodename nor servname")
        || lower.contains("temporary failure in name resolution")
        || lower.contains("no address associated")
        || lower.contains("dns");
    dns.then(|| format!("DNS: cannot resolve host {host:?}"))
}

pub mod address;
pub mod docker;
pub mod exec;
pub mod http;
pub mod nats;
pub mod redis;
pub mod tcp;

pub use address::{AddressMode, PublishedPorts};

use std::sync::Arc;

/// Why a probe could not be built from its spec (bad fields, missing Docker).
/// Messages name the probe kind and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("{kind} probe: field `{field}`: {message}")]
    Field {
        kind: &'static str,
        field: &'static str,
        message: String,
    },
    #[error("{kind} probe: {message}")]
    Unavailable { kind: &'static str, message: String },
    #[error(
        "agent probes are wired by the supervisor (the ready signal in Redis), not by probe::build"
    )]
    AgentProbe,
}

impl ProbeError {
    /// The field an error is about, when it is about one.
    pub fn field_name(&self) -> Option<&'static str> {
        match self {
            ProbeError::Field { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(crate) fn field(
        kind: &'static str,
        field: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ProbeError::Field {
            kind,
            field,
            message: message.into(),
        }
    }
}

/// Finds the container a service runs in (for `exec` and `docker` probes).
/// Asked on every check, so a restarted container is followed.
pub trait ContainerResolver: Send + Sync {
    fn container_id<'a>(
        &'a self,
        service: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;
}

/// A fixed service -> container id map (tests, or a supervisor that tracks ids itself).
#[derive(Debug, Clone, Default)]
pub struct StaticResolver(pub std::collections::BTreeMap<String, String>);

impl ContainerResolver for StaticResolver {
    fn container_id<'a>(
        &'a self,
        service: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
        Box::pin(async move { self.0.get(service).cloned() })
    }
}

/// Finds a running container of a compose service by the labels Compose sets
/// (`com.docker.compose.project`, `com.docker.compose.service`).
#[derive(Clone)]
pub struct LabelResolver {
    pub docker: bollard::Docker,
    pub project: String,
}

impl ContainerResolver for LabelResolver {
    fn container_id<'a>(
        &'a self,
        service: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
        Box::pin(async move {
            let mut filters = std::collections::HashMap::new();
            filters.insert(
                "label".to_string(),
                vec![
                    format!("com.docker.compose.project={}", self.project),
                    format!("com.docker.compose.service={service}"),
                ],
            );
            filters.insert("status".to_string(), vec!["running".to_string()]);
            let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(false)
                .filters(&filters)
                .build();
            let list = self.docker.list_containers(Some(options)).await.ok()?;
            list.into_iter().find_map(|c| c.id)
        })
    }
}

/// The id of the service's running container, or the failure both container
/// probes (exec and docker) report when there is none.
pub(crate) async fn running_container_id(
    resolver: &dyn ContainerResolver,
    service: &str,
) -> Result<String, Failure> {
    resolver
        .container_id(service)
        .await
        .ok_or_else(|| Failure::fail(format!("no running container for service {service:?}")))
}

/// The Engine's own message when there is one.
pub(crate) fn docker_error(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            format!("{message} (HTTP {status_code})")
        }
        other => other.to_string(),
    }
}

/// What a probe needs besides its spec: where it runs and how to reach Docker.
#[derive(Clone, Default)]
pub struct ProbeContext {
    /// The service the probe belongs to (exec / docker probes look up its container).
    pub service: String,
    /// Docker Engine handle; required by `exec` and `docker` probes.
    pub docker: Option<bollard::Docker>,
    /// Container lookup for `exec` and `docker` probes.
    pub resolver: Option<Arc<dyn ContainerResolver>>,
    /// How hostnames in probe URLs are reached (see [`AddressMode`]).
    pub address_mode: AddressMode,
    /// service -> (container port -> published host port), used in `host` mode.
    pub published: PublishedPorts,
}

impl ProbeContext {
    /// A context for a service with everything else at its default (`network` mode, no Docker).
    pub fn for_service(service: impl Into<String>) -> ProbeContext {
        ProbeContext {
            service: service.into(),
            ..Default::default()
        }
    }

    pub(crate) fn docker_and_resolver(
        &self,
        kind: &'static str,
    ) -> Result<(bollard::Docker, Arc<dyn ContainerResolver>), ProbeError> {
        let docker = self.docker.clone().ok_or_else(|| ProbeError::Unavailable {
            kind,
            message: "needs the Docker engine, and none is connected".into(),
        })?;
        let resolver = self
            .resolver
            .clone()
            .ok_or_else(|| ProbeError::Unavailable {
                kind,
                message: format!(
                    "cannot find the container of service {:?}: no container resolver",
                    self.service
                ),
            })?;
        Ok((docker, resolver))
    }
}

/// Builds the probe a spec describes. `agent` probes are built by the supervisor
/// (they read the ready signal through its Redis connection) and refused here.
pub fn build(spec: &ProbeSpec, ctx: &ProbeContext) -> Result<Box<dyn Probe>, ProbeError> {
    let timeout = spec.timing.timeout;
    if timeout.is_zero() {
        return Err(ProbeError::field(
            spec.kind.name(),
            "timeout",
            "must be more than 0s",
        ));
    }
    if spec.timing.period.is_zero() {
        return Err(ProbeError::field(
            spec.kind.name(),
            "period",
            "must be more than 0s",
        ));
    }
    if spec.timing.success_threshold == 0 {
        return Err(ProbeError::field(
            spec.kind.name(),
            "success_threshold",
            "must be at least 1",
        ));
    }
    if spec.timing.failure_threshold == 0 {
        return Err(ProbeError::field(
            spec.kind.name(),
            "failure_threshold",
            "must be at least 1",
        ));
    }
    Ok(match &spec.kind {
        ProbeKind::Redis(s) => Box::new(redis::RedisProbe::new(s, ctx, timeout)?),
        ProbeKind::Nats(s) => Box::new(nats::NatsProbe::new(s, ctx, timeout)?),
        ProbeKind::Http(s) => Box::new(http::HttpProbe::new(s, ctx, timeout)?),
        ProbeKind::Tcp(s) => Box::new(tcp::TcpProbe::new(s, ctx, timeout)?),
        ProbeKind::Exec(s) => Box::new(exec::ExecProbe::new(s, ctx, timeout)?),
        ProbeKind::Docker(s) => Box::new(docker::DockerProbe::new(s, ctx)?),
        ProbeKind::Agent(_) => return Err(ProbeError::AgentProbe),
    })
}

/// The last `max` characters of `text` (on a char boundary), trimmed.
pub(crate) fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = text.len() - max;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &text[cut..])
}

/// Published ports of a compose project's running containers, from Docker:
/// service -> (container port -> host port), for the `host` address mode.
pub async fn published_ports_from_docker(
    docker: &bollard::Docker,
    project: &str,
) -> Result<PublishedPorts, bollard::errors::Error> {
    let mut filters = std::collections::HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![format!("com.docker.compose.project={project}")],
    );
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(false)
        .filters(&filters)
        .build();
    let mut out = PublishedPorts::new();
    for c in docker.list_containers(Some(options)).await? {
        let Some(service) = c
            .labels
            .as_ref()
            .and_then(|l| l.get("com.docker.compose.service"))
        else {
            continue;
        };
        let ports = out.entry(service.clone()).or_default();
        for p in c.ports.unwrap_or_default() {
            let loopback_reachable =
                p.ip.as_deref()
                    .is_none_or(|ip| matches!(ip, "0.0.0.0" | "127.0.0.1" | "" | "::"));
            if let (Some(public), true) = (p.public_port, loopback_reachable) {
                ports.entry(p.private_port).or_insert(public);
            }
        }
    }
    Ok(out)
}
