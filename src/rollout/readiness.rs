//! Readiness of one container, the question a rollout asks of every new
//! container (before it joins the service name, and through its monitor
//! window). The basis, strongest first:
//!
//! 1. the service's `x-muster` probes, pointed at this one container: a URL or
//!    address whose host is the service name (or one of its aliases) is
//!    rewritten to the container's own address on the project network; `exec`
//!    and `docker` probes run against the container by id; an `agent` probe
//!    needs the agent's ready signal to come from this container's hostname.
//!    The thresholds, roles and start window are the supervisor's
//!    ([`ServiceMachine`]); a Docker healthcheck that reports `unhealthy`
//!    fails the container too;
//! 2. else the container's Docker healthcheck (`healthy`);
//! 3. else: running.
//!
//! Any basis fails at once when the container stops running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::containers::{inspect, short, Observed};
use crate::compose::xmuster::{MusterService, ProbeKind, ProbeSpec, ProbeTiming};
use crate::compose::Service;
use crate::engine::{Engine, Health};
use crate::probe::{Probe, ProbeContext, ProbeFuture, ProbeOutcome, StaticResolver};
use crate::supervisor::machine::ServiceMachine;
use crate::supervisor::ServiceState;

/// The verdict of one look at a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready(String),
    Pending(String),
    Failed(String),
}

/// How readiness of the service's containers is decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Basis {
    Probes {
        specs: Vec<ProbeSpec>,
        grace: Duration,
    },
    Healthcheck(HealthTiming),
    Running,
}

/// The timing of a Docker healthcheck (the compose file's, else the image's, else Docker's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTiming {
    pub interval: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

/// What decides readiness for one service's containers.
#[derive(Debug, Clone)]
pub struct ReadinessPlan {
    pub service: Service,
    pub basis: Basis,
    /// Redis (for agent probes) and the namespace.
    pub redis_url: String,
    pub namespace: String,
}

/// Why a container is not (or no longer) ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The check's own reason (a probe failed out, the container exited,
    /// its healthcheck said unhealthy).
    #[error("{0}")]
    Failed(String),
    #[error("not ready within the progress deadline {deadline} (last: {last})")]
    Deadline { deadline: String, last: String },
    /// The rollout was asked to stop (Ctrl-C, SIGTERM).
    #[error("interrupted")]
    Interrupted,
}

/// A probe of `x-muster.probes` that cannot be set up for a container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("x-muster.probes[{index}]: {message}")]
pub struct ProbeSetupError {
    pub index: usize,
    pub message: String,
}

/// What readiness needs of muster's settings (built by the settings from
/// flags, environment, the config file and defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadinessOptions {
    /// config/muster.yaml's per-service `x-muster`, for services whose compose
    /// file sets no probes.
    pub services: BTreeMap<String, MusterService>,
    /// Redis (for agent probes) and the namespace.
    pub redis_url: String,
    pub namespace: String,
}

impl ReadinessPlan {
    /// The plan for `service` (the revision being rolled out). `image_health`
    /// is the image's own healthcheck timing, when it declares one.
    pub fn new(
        service: &Service,
        settings: &ReadinessOptions,
        image_health: Option<HealthTiming>,
    ) -> ReadinessPlan {
        let muster = service.muster_settings(&settings.services);
        let basis = match muster {
            Some(m) if !m.probes.is_empty() => Basis::Probes {
                specs: m.probes.clone(),
                grace: crate::supervisor::plan::declared_grace(service, Some(m)),
            },
            _ => match (
                crate::engine::translate::declares_healthcheck(service),
                image_health,
            ) {
                (Some(false), _) => Basis::Running,
                (Some(true), _) => {
                    let h = service.healthcheck.clone().unwrap_or_default();
                    Basis::Healthcheck(HealthTiming {
                        interval: h.interval,
                        retries: h.retries,
                        start_period: h.start_period,
                    })
                }
                (None, Some(image)) => {
                    // The compose file may still set timings over the image's test.
                    match &service.healthcheck {
                        Some(h) => Basis::Healthcheck(HealthTiming {
                            interval: h.interval,
                            retries: h.retries,
                            start_period: h.start_period,
                        }),
                        None => Basis::Healthcheck(image),
                    }
                }
                (None, None) => Basis::Running,
            },
        };
        ReadinessPlan {
            service: service.clone(),
            basis,
            redis_url: settings.redis_url.clone(),
            namespace: settings.namespace.clone(),
        }
    }

    /// For people: `x-muster probes (http http://web:8080/healthz)`, `Docker healthcheck`, `running`.
    pub fn describe(&self) -> String {
        match &self.basis {
            Basis::Probes { specs, .. } => {
                let kinds: Vec<&str> = specs.iter().map(|s| s.kind.name()).collect();
                format!("x-muster probes ({})", kinds.join(", "))
            }
            Basis::Healthcheck(_) => "Docker healthcheck".to_string(),
            Basis::Running => "running".to_string(),
        }
    }

    /// The shortest monitor window in which the readiness check can fail a
    /// container that went ready: start_period + interval × retries (the
    /// healthcheck), or grace + period × failure_threshold (the slowest probe).
    pub fn minimum_monitor(&self) -> Option<(Duration, String)> {
        match &self.basis {
            Basis::Running => None,
            Basis::Healthcheck(h) => Some((
                h.start_period + h.interval * h.retries,
                format!(
                    "healthcheck start_period {} + interval {} × retries {}",
                    crate::duration::format(h.start_period),
                    crate::duration::format(h.interval),
                    h.retries
                ),
            )),
            Basis::Probes { specs, grace } => specs
                .iter()
                .filter(|s| s.timing.role != crate::compose::xmuster::ProbeRole::Startup)
                .map(|s| {
                    (
                        *grace + s.timing.period * s.timing.failure_threshold,
                        format!(
                            "x-muster grace {} + {} probe period {} × failure_threshold {}",
                            crate::duration::format(*grace),
                            s.kind.name(),
                            crate::duration::format(s.timing.period),
                            s.timing.failure_threshold
                        ),
                    )
                })
                .max_by_key(|(d, _)| *d),
        }
    }

    /// A checker for one container (a probe of `x-muster.probes` that cannot
    /// be set up for it is an error).
    pub async fn checker(
        &self,
        engine: &Engine,
        container: &Observed,
    ) -> Result<Checker, ProbeSetupError> {
        let now = Instant::now();
        let kind = match &self.basis {
            Basis::Running => CheckKind::Running,
            Basis::Healthcheck(_) => CheckKind::Health,
            Basis::Probes { specs, grace } => {
                let mut probes = Vec::new();
                for (index, spec) in specs.iter().enumerate() {
                    let probe = self
                        .build_probe(engine, container, spec)
                        .await
                        .map_err(|message| ProbeSetupError { index, message })?;
                    probes.push(ProbeSlot {
                        timing: spec.timing.clone(),
                        probe,
                        due: now,
                    });
                }
                let timings: Vec<ProbeTiming> = specs.iter().map(|s| s.timing.clone()).collect();
                let mut machine = ServiceMachine::new(&timings, *grace, now);
                machine.started(now);
                CheckKind::Probes {
                    machine: Box::new(machine),
                    probes,
                }
            }
        };
        Ok(Checker {
            id: container.id.clone(),
            name: container.name.clone(),
            kind,
        })
    }

    async fn build_probe(
        &self,
        engine: &Engine,
        container: &Observed,
        spec: &ProbeSpec,
    ) -> Result<Box<dyn Probe>, String> {
        let service = &self.service.name;
        let address = container.address(None).unwrap_or_default();
        let mut names: Vec<String> = vec![service.clone(), container.name.clone()];
        for net in self.service.networks.values() {
            names.extend(net.aliases.iter().cloned());
        }
        let rewrite = |url: &str| -> String { rewrite_host(url, &names, &address) };
        let mut spec = spec.clone();
        match &mut spec.kind {
            ProbeKind::Http(h) => h.url = rewrite(&h.url),
            ProbeKind::Redis(r) => r.url = rewrite(&r.url),
            ProbeKind::Nats(n) => {
                n.url = n.url.as_deref().map(rewrite);
                n.monitor_url = n.monitor_url.as_deref().map(rewrite);
            }
            ProbeKind::Tcp(t) => t.address = rewrite_address(&t.address, &names, &address),
            ProbeKind::Agent(a) => {
                let agent = a.name.clone().unwrap_or_else(|| service.clone());
                return Ok(Box::new(
                    AgentOfContainer::connect(
                        &self.redis_url,
                        &self.namespace,
                        &agent,
                        &container.hostname,
                        spec.timing.timeout,
                    )
                    .await?,
                ));
            }
            ProbeKind::Exec(_) | ProbeKind::Docker(_) => {}
        }
        let ctx = ProbeContext {
            service: service.clone(),
            docker: Some(engine.docker().clone()),
            resolver: Some(Arc::new(StaticResolver(
                [(service.clone(), container.id.clone())]
                    .into_iter()
                    .collect(),
            ))),
            // The address is the container's own: used as written.
            address_mode: crate::probe::AddressMode::Network,
            published: Default::default(),
        };
        crate::probe::build(&spec, &ctx).map_err(|e| e.to_string())
    }
}

/// `scheme://[user@]host[:port]/rest` with `host` replaced by `address` when
/// it is one of `names`.
fn rewrite_host(url: &str, names: &[String], address: &str) -> String {
    let Ok(parts) = crate::url::split_url(url) else {
        return url.to_string();
    };
    if address.is_empty() || !names.iter().any(|n| n == parts.host) {
        return url.to_string();
    }
    let userinfo = parts.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let port = parts.port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{userinfo}{address}{port}{}", parts.scheme, parts.rest)
}

fn rewrite_address(hostport: &str, names: &[String], address: &str) -> String {
    match crate::url::split_host_port(hostport) {
        Ok((host, port)) if !address.is_empty() && names.iter().any(|n| n == host) => match port {
            Some(p) => format!("{address}:{p}"),
            None => address.to_string(),
        },
        _ => hostport.to_string(),
    }
}

struct ProbeSlot {
    timing: ProbeTiming,
    probe: Box<dyn Probe>,
    due: Instant,
}

enum CheckKind {
    Running,
    Health,
    Probes {
        machine: Box<ServiceMachine>,
        probes: Vec<ProbeSlot>,
    },
}

/// Follows one container's readiness.
pub struct Checker {
    pub id: String,
    pub name: String,
    kind: CheckKind,
}

impl Checker {
    /// How often `poll` is worth calling.
    pub fn tick(&self) -> Duration {
        match &self.kind {
            CheckKind::Probes { probes, .. } => probes
                .iter()
                .map(|p| p.timing.period)
                .min()
                .unwrap_or(Duration::from_millis(250))
                .clamp(Duration::from_millis(50), Duration::from_millis(500)),
            _ => Duration::from_millis(200),
        }
    }

    /// One look: the container's state, then the due probes.
    pub async fn poll(&mut self, engine: &Engine) -> Verdict {
        let observed = match inspect(engine, &self.id).await {
            Ok(o) => o,
            Err(e) if e.is_not_found() => {
                return Verdict::Failed(format!("container {} is gone", short(&self.id)))
            }
            Err(e) => return Verdict::Pending(format!("cannot inspect: {e}")),
        };
        if !observed.running {
            return Verdict::Failed(match observed.exit_code {
                Some(code) => format!("container exited with code {code}"),
                None => format!("container is {}", observed.status),
            });
        }
        let unhealthy = observed.health == Some(Health::Unhealthy);
        let health_reason = || match &observed.health_output {
            Some(out) => format!("healthcheck reports unhealthy: {out}"),
            None => "healthcheck reports unhealthy".to_string(),
        };
        match &mut self.kind {
            CheckKind::Running => Verdict::Ready("running".into()),
            CheckKind::Health => match &observed.health {
                Some(Health::Healthy) => Verdict::Ready("healthy".into()),
                Some(Health::Unhealthy) => Verdict::Failed(health_reason()),
                None if !observed.has_healthcheck => {
                    Verdict::Ready("running (no healthcheck)".into())
                }
                other => Verdict::Pending(match &observed.health_output {
                    Some(out) => format!(
                        "health {}: {out}",
                        other.as_ref().map_or("starting", Health::as_str)
                    ),
                    None => format!(
                        "health {}",
                        other.as_ref().map_or("starting", Health::as_str)
                    ),
                }),
            },
            CheckKind::Probes { machine, probes } => {
                if unhealthy {
                    return Verdict::Failed(health_reason());
                }
                let now = Instant::now();
                for (index, slot) in probes.iter_mut().enumerate() {
                    if slot.due > now {
                        continue;
                    }
                    let timeout = slot.timing.timeout;
                    let outcome = match tokio::time::timeout(timeout, slot.probe.check()).await {
                        Ok(o) => o,
                        Err(_) => ProbeOutcome::timeout(timeout),
                    };
                    slot.due = Instant::now() + slot.timing.period;
                    machine.probe_result(index, outcome, Instant::now());
                }
                let reason = machine
                    .transitions()
                    .last()
                    .map(|t| t.reason.clone())
                    .unwrap_or_default();
                let last_failure = || {
                    machine
                        .probes()
                        .iter()
                        .filter_map(|p| p.last.as_ref())
                        .find(|o| !o.is_ok())
                        .map(|o| o.reason.clone())
                        .unwrap_or_else(|| "waiting for the first probe".to_string())
                };
                match machine.state() {
                    ServiceState::Ready => Verdict::Ready(reason),
                    ServiceState::Unready if reason.starts_with("not ready") => {
                        Verdict::Failed(reason)
                    }
                    ServiceState::Unready => Verdict::Failed(format!("not ready: {reason}")),
                    ServiceState::Failed => Verdict::Failed(reason),
                    _ => Verdict::Pending(last_failure()),
                }
            }
        }
    }

    /// Polls until ready, failed, or `deadline` passes (a failure), or `cancel` turns true.
    pub async fn wait_ready(
        &mut self,
        engine: &Engine,
        deadline: Duration,
        cancel: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<String, NotReady> {
        let until = Instant::now() + deadline;
        loop {
            let last = match self.poll(engine).await {
                Verdict::Ready(detail) => return Ok(detail),
                Verdict::Failed(reason) => return Err(NotReady::Failed(reason)),
                Verdict::Pending(reason) => reason,
            };
            if Instant::now() >= until {
                return Err(NotReady::Deadline {
                    deadline: crate::duration::format(deadline),
                    last,
                });
            }
            if *cancel.borrow() {
                return Err(NotReady::Interrupted);
            }
            let tick = self.tick();
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                changed = cancel.changed() => {
                    // A dropped sender never cancels: just wait the tick.
                    if changed.is_err() {
                        tokio::time::sleep(tick).await;
                    }
                }
            }
        }
    }

    /// Polls for `window`: `Err` as soon as the container is not ready.
    pub async fn monitor(
        &mut self,
        engine: &Engine,
        window: Duration,
        cancel: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), NotReady> {
        let until = Instant::now() + window;
        loop {
            match self.poll(engine).await {
                Verdict::Ready(_) => {}
                Verdict::Failed(reason) => return Err(NotReady::Failed(reason)),
                Verdict::Pending(reason) if reason.starts_with("not ready") => {
                    return Err(NotReady::Failed(reason))
                }
                Verdict::Pending(reason) => {
                    return Err(NotReady::Failed(format!("not ready: {reason}")))
                }
            }
            if Instant::now() >= until {
                return Ok(());
            }
            if *cancel.borrow() {
                return Err(NotReady::Interrupted);
            }
            let left = until.saturating_duration_since(Instant::now());
            let tick = self.tick().min(left);
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                changed = cancel.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(tick).await;
                    }
                }
            }
        }
    }
}

/// The timing of an image's own healthcheck, when it declares one.
pub async fn image_health(engine: &Engine, image: &str) -> Option<HealthTiming> {
    let img = engine.docker().inspect_image(image).await.ok()?;
    let h = img.config?.healthcheck?;
    let test = h.test.unwrap_or_default();
    if !crate::engine::declares_healthcheck(&test) {
        return None;
    }
    let d = |ns: Option<i64>, default: Duration| match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    };
    let defaults = crate::compose::Healthcheck::default();
    Some(HealthTiming {
        interval: d(h.interval, defaults.interval),
        retries: h
            .retries
            .filter(|r| *r > 0)
            .map(|r| r as u32)
            .unwrap_or(defaults.retries),
        start_period: d(h.start_period, defaults.start_period),
    })
}

/// An agent probe for one container: the agent's ready signal must say
/// `ready` and come from this container's hostname (the replicas of an agent
/// share one key; during a rollout the new container must be the one that
/// signals).
struct AgentOfContainer {
    conn: redis::aio::MultiplexedConnection,
    key: String,
    agent: String,
    hostname: String,
}

impl AgentOfContainer {
    async fn connect(
        url: &str,
        namespace: &str,
        agent: &str,
        hostname: &str,
        timeout: Duration,
    ) -> Result<AgentOfContainer, String> {
        let shown = crate::url::redact_url(url);
        let client = redis::Client::open(url).map_err(|e| format!("agent probe: {shown}: {e}"))?;
        let conn = tokio::time::timeout(
            timeout.max(Duration::from_secs(2)),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| format!("agent probe: {shown} did not answer"))?
        .map_err(|e| format!("agent probe: {shown}: {e}"))?;
        Ok(AgentOfContainer {
            conn,
            key: muster_signal::ready_key(namespace, agent),
            agent: agent.to_string(),
            hostname: hostname.to_string(),
        })
    }
}

impl Probe for AgentOfContainer {
    fn kind(&self) -> &'static str {
        "agent"
    }

    fn target(&self) -> String {
        format!("{} from {}", self.agent, self.hostname)
    }

    fn check(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let start = Instant::now();
            let raw: Result<Option<String>, _> = redis::cmd("GET")
                .arg(&self.key)
                .query_async(&mut self.conn)
                .await;
            let latency = start.elapsed();
            match raw {
                Err(e) => ProbeOutcome::fail(latency, format!("redis: {e}")),
                Ok(None) => ProbeOutcome::fail(latency, "no ready signal"),
                Ok(Some(text)) => match serde_json::from_str::<muster_signal::SignalValue>(&text) {
                    Err(e) => ProbeOutcome::fail(latency, format!("corrupt signal ({e})")),
                    Ok(v) => {
                        let host = v.host.clone().unwrap_or_default();
                        if host != self.hostname {
                            ProbeOutcome::fail(
                                latency,
                                format!("the ready signal is from {host:?}, not this container"),
                            )
                        } else if v.status == muster_signal::Status::Ready {
                            ProbeOutcome::ok(latency, "agent ready")
                        } else {
                            ProbeOutcome::fail(latency, format!("agent is {}", v.status.as_str()))
                        }
                    }
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_service_host() {
        let names = vec!["web".to_string(), "p-web-4".to_string()];
        assert_eq!(
            rewrite_host("http://web:8080/healthz?x=1", &names, "172.18.0.5"),
            "http://172.18.0.5:8080/healthz?x=1"
        );
        assert_eq!(
            rewrite_host("redis://u:p@web/2", &names, "10.0.0.2"),
            "redis://u:p@10.0.0.2/2"
        );
        assert_eq!(
            rewrite_host("http://db:5432/", &names, "10.0.0.2"),
            "http://db:5432/"
        );
        assert_eq!(rewrite_address("web:80", &names, "10.0.0.2"), "10.0.0.2:80");
        assert_eq!(rewrite_address("db:80", &names, "10.0.0.2"), "db:80");
    }

    #[test]
    fn basis_and_minimum_monitor() {
        let settings = ReadinessOptions {
            redis_url: "redis://127.0.0.1:6379".into(),
            namespace: "muster".into(),
            ..Default::default()
        };
        let mut s = Service {
            name: "web".into(),
            image: Some("x".into()),
            ..Default::default()
        };
        let plan = ReadinessPlan::new(&s, &settings, None);
        assert_eq!(plan.basis, Basis::Running);
        assert!(plan.minimum_monitor().is_none());
        let image = HealthTiming {
            interval: Duration::from_secs(2),
            retries: 3,
            start_period: Duration::from_secs(1),
        };
        let plan = ReadinessPlan::new(&s, &settings, Some(image));
        assert_eq!(plan.minimum_monitor().unwrap().0, Duration::from_secs(7));
        s.healthcheck = Some(crate::compose::Healthcheck {
            test: Some(crate::compose::HealthTest::CmdShell("true".into())),
            interval: Duration::from_millis(200),
            retries: 3,
            ..Default::default()
        });
        let plan = ReadinessPlan::new(&s, &settings, Some(image));
        let (d, why) = plan.minimum_monitor().unwrap();
        assert_eq!(d, Duration::from_millis(600));
        assert!(why.contains("retries 3"), "{why}");
    }
}
