//! Turns a compose project (and config/muster.yaml) into the probes the
//! runner runs: which services muster's own probes decide, with what grace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::runner::{RunnerProbe, ServiceProbes};
use crate::compose::xmuster::{GraceSetting, MusterService, ProbeKind, ProbeSpec};
use crate::compose::{Project, Service};
use crate::grace::GraceDecision;
use crate::probe::address::PublishedPorts;
use crate::probe::agent::AgentProbe;
use crate::probe::{AddressMode, LabelResolver, ProbeContext};
use crate::signal::{AgentWatcher, WatcherConfig};

/// The probes of a stack, and the agent watcher they share (when any service has an agent probe).
pub struct ProbePlan {
    pub services: Vec<ServiceProbes>,
    pub watcher: Option<AgentWatcher>,
    /// service -> agent name, for services with an agent probe (progress and deadlines).
    pub agents: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// `at` is where the probe (or its field) is written: `file:line:col: `,
    /// or empty when that cannot be told; `path` names it in that file.
    #[error("{at}{path}: {message}")]
    Probe {
        at: String,
        path: String,
        message: String,
    },
    #[error("agent probes need Redis at {url}: {message}")]
    Watcher { url: String, message: String },
}

/// What the probe plan needs of muster's settings (built by the settings
/// from flags, environment, the config file and defaults).
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// config/muster.yaml's per-service `x-muster`, for services whose compose
    /// file sets no probes.
    pub services: BTreeMap<String, MusterService>,
    /// How probe hostnames are reached.
    pub probe_address: AddressMode,
    /// The config file that was read, to point probe errors at.
    pub config_path: Option<PathBuf>,
    /// Redis (and NATS) for agent probes.
    pub watcher: WatcherConfig,
}

/// Host ports the compose file publishes at fixed numbers: service -> (container port -> host port).
/// Ephemeral ports are only known once containers run ([`crate::probe::published_ports_from_docker`]).
pub fn published_ports_from_model(project: &Project) -> PublishedPorts {
    let mut out = PublishedPorts::new();
    for (name, service) in &project.services {
        for port in &service.ports {
            let fixed = port
                .published
                .as_deref()
                .and_then(|p| p.parse::<u16>().ok());
            if let Some(host) = fixed {
                out.entry(name.clone())
                    .or_default()
                    .entry(port.target)
                    .or_insert(host);
            }
        }
    }
    out
}

/// The declared grace of a service: `x-muster.grace`, else its healthcheck's start_period.
/// The effective grace (image size, learned history) is [`crate::grace`]'s;
/// [`plan_with_grace`] takes it.
pub fn declared_grace(service: &Service, muster: Option<&MusterService>) -> Duration {
    let start_period = service
        .healthcheck
        .as_ref()
        .map(|h| h.start_period)
        .unwrap_or_default();
    match muster.map(|m| m.grace).unwrap_or_default() {
        GraceSetting::Fixed(d) => d,
        GraceSetting::Off => Duration::ZERO,
        GraceSetting::Auto => start_period,
    }
}

/// Builds every probe of every service that has some. Services without probes
/// are left to the engine's view (running / Docker health) — or, with
/// `fallback_docker` (a supervisor watching a running stack), get a `docker`
/// probe that reads exactly that view. Grace is the declared one
/// ([`declared_grace`]); [`plan_with_grace`] takes tuned periods.
pub fn plan(
    project: &Project,
    options: &PlanOptions,
    docker: Option<bollard::Docker>,
    published: PublishedPorts,
    fallback_docker: bool,
) -> Result<ProbePlan, PlanError> {
    plan_with_grace(
        project,
        options,
        docker,
        published,
        fallback_docker,
        &BTreeMap::new(),
    )
}

/// As [`plan`], with the effective grace period of each service decided
/// beforehand ([`crate::grace::decide_services`]); a service without a
/// decision gets its declared grace.
pub fn plan_with_grace(
    project: &Project,
    options: &PlanOptions,
    docker: Option<bollard::Docker>,
    published: PublishedPorts,
    fallback_docker: bool,
    grace: &BTreeMap<String, GraceDecision>,
) -> Result<ProbePlan, PlanError> {
    let mut fallback = MusterService {
        probes: vec![crate::compose::xmuster::ProbeSpec {
            kind: ProbeKind::Docker(Default::default()),
            timing: Default::default(),
        }],
        grace: GraceSetting::Auto,
        required: true,
        restart: None,
        on_unhealthy: Default::default(),
        ready_tasks: None,
    };
    let resolver = docker.clone().map(|docker| {
        Arc::new(LabelResolver {
            docker,
            project: project.name.clone(),
        }) as Arc<dyn crate::probe::ContainerResolver>
    });
    let base = ProbeContext {
        service: String::new(),
        docker,
        resolver,
        address_mode: options.probe_address,
        published,
    };
    let mut watcher: Option<AgentWatcher> = None;
    let mut services = Vec::new();
    let mut agents = Vec::new();
    for (name, service) in &project.services {
        let muster = match service.muster_settings(&options.services) {
            Some(m) if !m.probes.is_empty() => m,
            Some(m) if fallback_docker && base.docker.is_some() => {
                fallback.required = m.required;
                &fallback
            }
            None if fallback_docker && base.docker.is_some() => &fallback,
            _ => continue,
        };
        let ctx = ProbeContext {
            service: name.clone(),
            ..base.clone()
        };
        let mut probes = Vec::with_capacity(muster.probes.len());
        for (index, spec) in muster.probes.iter().enumerate() {
            let err = |field: Option<&str>, message: String| {
                spec_error(project, options, service, index, spec, field, message)
            };
            let probe: Box<dyn crate::probe::Probe> = match &spec.kind {
                ProbeKind::Agent(agent) => {
                    let watcher = match &watcher {
                        Some(w) => w.clone(),
                        None => {
                            let w = AgentWatcher::start(options.watcher.clone()).map_err(|e| {
                                PlanError::Watcher {
                                    url: crate::url::redact_url(&options.watcher.redis_url),
                                    message: e.to_string(),
                                }
                            })?;
                            watcher = Some(w.clone());
                            w
                        }
                    };
                    let probe = AgentProbe::from_spec(agent, name, watcher)
                        .map_err(|e| err(Some("name"), e.to_string()))?;
                    agents.push((name.clone(), probe.agent().to_string()));
                    Box::new(probe)
                }
                _ => crate::probe::build(spec, &ctx)
                    .map_err(|e| err(e.field_name(), e.to_string()))?,
            };
            probes.push(RunnerProbe {
                timing: spec.timing.clone(),
                probe,
            });
        }
        services.push(ServiceProbes {
            service: name.clone(),
            required: muster.required,
            grace: grace
                .get(name)
                .map(|d| d.period)
                .unwrap_or_else(|| declared_grace(service, Some(muster))),
            probes,
        });
    }
    Ok(ProbePlan {
        services,
        watcher,
        agents,
    })
}

/// Every agent the project's `agent` probes wait for, with the service that
/// names it, in service order (an agent named twice is listed once).
pub fn agents(project: &Project, options: &PlanOptions) -> Vec<(String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (name, service) in &project.services {
        let Some(muster) = service.muster_settings(&options.services) else {
            continue;
        };
        for spec in &muster.probes {
            if let ProbeKind::Agent(agent) = &spec.kind {
                let agent = agent.name.clone().unwrap_or_else(|| name.clone());
                if seen.insert(agent.clone()) {
                    out.push((name.clone(), agent));
                }
            }
        }
    }
    out
}

/// Checks every probe the project would run, as `up` and `status` build
/// them, without connecting anywhere: `muster config` and `muster graph`
/// refuse the same probe settings that `up` refuses, with the same
/// file:line:col. What only a running engine can tell (an `exec` or `docker`
/// probe's container) is left to `up`.
pub fn check_probes(project: &Project, options: &PlanOptions) -> Result<(), PlanError> {
    for (name, service) in &project.services {
        let Some(muster) = service.muster_settings(&options.services) else {
            continue;
        };
        let ctx = ProbeContext {
            service: name.clone(),
            address_mode: options.probe_address,
            ..ProbeContext::default()
        };
        for (index, spec) in muster.probes.iter().enumerate() {
            let (field, message) = match &spec.kind {
                ProbeKind::Agent(agent) => {
                    let agent = agent.name.as_deref().unwrap_or(name);
                    match crate::signal::validate_name(agent) {
                        Ok(()) => continue,
                        Err(e) => (Some("name"), e.to_string()),
                    }
                }
                _ => match crate::probe::build(spec, &ctx) {
                    Ok(_) | Err(crate::probe::ProbeError::Unavailable { .. }) => continue,
                    Err(e) => (e.field_name(), e.to_string()),
                },
            };
            return Err(spec_error(
                project, options, service, index, spec, field, message,
            ));
        }
    }
    Ok(())
}

/// The error of probe `index` (`spec`) of `service`, pointed at where it is
/// written: the compose file's `x-muster` when that has the service's
/// probes, else config/muster.yaml.
fn spec_error(
    project: &Project,
    options: &PlanOptions,
    service: &Service,
    index: usize,
    spec: &ProbeSpec,
    field: Option<&str>,
    message: String,
) -> PlanError {
    let at = ProbeAt {
        service: &service.name,
        index,
        kind: spec.kind.name(),
        field,
        from_compose: service.compose_probes().is_some(),
    };
    probe_error(
        &project.config_files,
        options.config_path.as_deref(),
        at,
        message,
    )
}

/// Which probe an error is about.
#[derive(Debug, Clone, Copy)]
pub struct ProbeAt<'a> {
    pub service: &'a str,
    pub index: usize,
    /// The probe kind's key (`redis`, …).
    pub kind: &'a str,
    /// The field the error is about, when it is about one.
    pub field: Option<&'a str>,
    /// The probe is the compose file's `x-muster` (else config/muster.yaml's).
    pub from_compose: bool,
}

/// A probe that cannot be built, named by where it is written: the compose
/// file's `services.NAME.x-muster.probes[N]` or config/muster.yaml's
/// `services.NAME.probes[N]`, with the line of the field (or of the probe)
/// when the file still has it.
pub fn probe_error(
    compose_files: &[PathBuf],
    config_path: Option<&Path>,
    probe: ProbeAt<'_>,
    message: String,
) -> PlanError {
    use crate::compose::locate::{locate, Step};
    let ProbeAt {
        service,
        index,
        kind,
        field,
        from_compose,
    } = probe;
    let mut steps = vec![Step::Key("services"), Step::Key(service)];
    let (files, path): (Vec<PathBuf>, String) = if from_compose {
        steps.push(Step::Key("x-muster"));
        (
            compose_files.to_vec(),
            format!("services.{service}.x-muster.probes[{index}]"),
        )
    } else {
        (
            config_path.map(Path::to_path_buf).into_iter().collect(),
            format!("services.{service}.probes[{index}]"),
        )
    };
    let probe_depth = steps.len() + 2;
    steps.extend([Step::Key("probes"), Step::Index(index), Step::Key(kind)]);
    steps.extend(field.map(Step::Key));
    let at = match locate(&files, &steps, probe_depth) {
        Some(pos) => format!("{pos}: "),
        None => files
            .first()
            .map(|f| format!("{}: ", f.display()))
            .unwrap_or_default(),
    };
    PlanError::Probe { at, path, message }
}
