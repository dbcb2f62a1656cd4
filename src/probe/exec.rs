//! exec readiness: run a command inside the service's container through the
//! Engine API; exit code 0 is ok, otherwise the output's tail is the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::Docker;
use futures_util::StreamExt;

use super::{
    docker_error, running_container_id, ContainerResolver, Failure, Probe, ProbeContext,
    ProbeError, ProbeFuture, ProbeOutcome,
};
use crate::compose::xmuster::ExecProbeSpec;

const KIND: &str = "exec";
/// Output kept for the reason.
const OUTPUT_LIMIT: usize = 16 * 1024;

pub struct ExecProbe {
    docker: Docker,
    resolver: Arc<dyn ContainerResolver>,
    service: String,
    command: Vec<String>,
    timeout: Duration,
}

impl ExecProbe {
    pub fn new(
        spec: &ExecProbeSpec,
        ctx: &ProbeContext,
        timeout: Duration,
    ) -> Result<Self, ProbeError> {
        if spec.command.is_empty() || spec.command[0].is_empty() {
            return Err(ProbeError::field(
                KIND,
                "command",
                "must name a program (argv, e.g. [\"redis-cli\", \"ping\"])",
            ));
        }
        let (docker, resolver) = ctx.docker_and_resolver(KIND)?;
        Ok(ExecProbe {
            docker,
            resolver,
            service: ctx.service.clone(),
            command: spec.command.clone(),
            timeout,
        })
    }

    async fn run(&self) -> Result<String, Failure> {
        let id = running_container_id(self.resolver.as_ref(), &self.service).await?;
        let exec = self
            .docker
            .create_exec(
                &id,
                CreateExecOptions {
                    cmd: Some(self.command.clone()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                Failure::fail(format!(
                    "exec in container {}: {}",
                    short(&id),
                    docker_error(&e)
                ))
            })?;
        let mut output = String::new();
        match self.docker.start_exec(&exec.id, None).await.map_err(|e| {
            Failure::fail(format!(
                "exec start in {}: {}",
                short(&id),
                docker_error(&e)
            ))
        })? {
            StartExecResults::Attached {
                output: mut stream, ..
            } => {
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(log) => {
                            if output.len() < OUTPUT_LIMIT {
                                output.push_str(&String::from_utf8_lossy(&log.into_bytes()));
                            }
                        }
                        Err(e) => {
                            return Err(Failure::fail(format!("exec output: {}", docker_error(&e))))
                        }
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| Failure::fail(format!("exec inspect: {}", docker_error(&e))))?;
        let out = super::tail(&output, 200);
        match inspect.exit_code {
            Some(0) => Ok(if out.is_empty() {
                "exit 0".to_string()
            } else {
                format!("exit 0: {out}")
            }),
            Some(code) => Err(Failure::fail(if out.is_empty() {
                format!("{} exited {code}", self.command[0])
            } else {
                format!("{} exited {code}: {out}", self.command[0])
            })),
            None => Err(Failure::fail(format!(
                "{} did not report an exit code",
                self.command[0]
            ))),
        }
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl Probe for ExecProbe {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn target(&self) -> String {
        format!("{}: {}", self.service, self.command.join(" "))
    }

    fn check(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let start = Instant::now();
            let result = match tokio::time::timeout(self.timeout, self.run()).await {
                Ok(r) => r,
                Err(_) => Err(Failure::timed_out(format!(
                    "{} did not finish within {}",
                    self.command.join(" "),
                    crate::duration::format(self.timeout)
                ))),
            };
            match result {
                Ok(detail) => ProbeOutcome::ok(start.elapsed(), detail),
                Err(f) => f.outcome(start.elapsed()),
            }
        })
    }
}
