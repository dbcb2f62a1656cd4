//! docker readiness: the container's own healthcheck status (`healthy`), or,
//! for a container without a healthcheck, that it is running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::HealthStatusEnum;
use bollard::Docker;

use super::{
    docker_error, running_container_id, ContainerResolver, Failure, Probe, ProbeContext,
    ProbeError, ProbeFuture, ProbeOutcome,
};
use crate::compose::xmuster::DockerProbeSpec;

const KIND: &str = "docker";

pub struct DockerProbe {
    docker: Docker,
    resolver: Arc<dyn ContainerResolver>,
    service: String,
}

impl DockerProbe {
    pub fn new(_spec: &DockerProbeSpec, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let (docker, resolver) = ctx.docker_and_resolver(KIND)?;
        Ok(DockerProbe {
            docker,
            resolver,
            service: ctx.service.clone(),
        })
    }

    async fn run(&self) -> Result<String, Failure> {
        let id = running_container_id(self.resolver.as_ref(), &self.service).await?;
        let info = self
            .docker
            .inspect_container(&id, None)
            .await
            .map_err(|e| {
                Failure::fail(format!(
                    "inspect {}: {}",
                    &id[..id.len().min(12)],
                    docker_error(&e)
                ))
            })?;
        let state = info.state.unwrap_or_default();
        if state.running != Some(true) {
            let status = state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            return Err(Failure::fail(format!("container is {status}, not running")));
        }
        let Some(health) = state.health else {
            return Ok("running (no healthcheck)".to_string());
        };
        let last_output = health
            .log
            .as_ref()
            .and_then(|log| log.last())
            .and_then(|l| l.output.clone())
            .map(|o| super::tail(&o, 200))
            .filter(|o| !o.is_empty());
        match health.status {
            Some(HealthStatusEnum::HEALTHY) => Ok("healthy".to_string()),
            Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) | None => {
                Ok("running (no healthcheck)".to_string())
            }
            Some(other) => {
                let streak = health.failing_streak.unwrap_or(0);
                let mut reason = format!("docker health is {other}");
                if streak > 0 {
                    reason.push_str(&format!(" (failing streak {streak})"));
                }
                if let Some(out) = last_output {
                    reason.push_str(&format!(": {out}"));
                }
                Err(Failure::fail(reason))
            }
        }
    }
}

impl Probe for DockerProbe {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn target(&self) -> String {
        format!("{} (docker health)", self.service)
    }

    fn check(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let start = Instant::now();
            // The engine answers inspect quickly; bound it anyway.
            let bound = Duration::from_secs(30);
            let result = match tokio::time::timeout(bound, self.run()).await {
                Ok(r) => r,
                Err(_) => Err(Failure::timed_out("docker inspect did not answer")),
            };
            match result {
                Ok(detail) => ProbeOutcome::ok(start.elapsed(), detail),
                Err(f) => f.outcome(start.elapsed()),
            }
        })
    }
}
