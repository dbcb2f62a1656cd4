//! The ordered, readiness-gated deploy: one future per service that waits for
//! its dependencies' conditions (`service_started`: the required tasks run;
//! `service_healthy`: they pass muster's probes), creates the Swarm service,
//! and follows its tasks until the required number are ready. The services of
//! one graph level start together; nothing is created before what it depends
//! on holds (the same rule as the single-host `up`, with Swarm doing the
//! placement and restarts).
//!
//! Progress (networks, creations, each task's state changes, readiness) goes
//! to a callback, so the CLI prints lines or collects JSON.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::query_parameters::ListNetworksOptions;
use serde::Serialize;
use tokio::sync::watch;

use crate::compose::graph::Graph;
use crate::compose::{Condition, Project, Service};
use crate::engine::Engine;

use super::cluster::{api, manager, summary, Manager, Progress};
use super::objects;
use super::readiness::{gating_probes, TaskState};
use super::spec::{self, Ignored};
use super::update::Change;
use super::watch::TaskWatch;
use super::SwarmError;

/// What `up --swarm` takes besides the project.
#[derive(Debug, Clone, Default)]
pub struct SwarmOptions {
    /// Give up on a service not ready this long after the deploy began.
    pub wait_timeout: Option<Duration>,
}

/// One service after the deploy.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    pub service: String,
    /// `<stack>_<service>`.
    pub name: String,
    pub level: usize,
    /// False when the service existed before this deploy.
    pub created: bool,
    /// It existed with another spec (the compose file changed) and was
    /// updated through Swarm; false for a new or unchanged service.
    pub updated: bool,
    /// When muster created it (unix ms).
    pub created_at_ms: u64,
    /// When its required tasks first ran (unix ms).
    pub started_at_ms: u64,
    /// When its required tasks first passed the probes (unix ms).
    pub ready_at_ms: u64,
    /// Tasks that must be ready.
    pub required: usize,
    pub tasks: Vec<TaskState>,
}

/// The outcome of `up --swarm`.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub stack: String,
    pub manager: Manager,
    pub ignored: Vec<Ignored>,
    pub services: Vec<ServiceReport>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Pending,
    Started,
    Ready,
    Failed,
}

/// Creates the stack's overlay networks that are not there yet.
async fn ensure_networks(
    engine: &Engine,
    project: &Project,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), SwarmError> {
    let docker = engine.docker();
    for (_, request) in spec::networks(project) {
        let filters = HashMap::from([("name".to_string(), vec![request.name.clone()])]);
        let existing = docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(api(format!("listing network {}", request.name)))?;
        if let Some(found) = existing
            .iter()
            .find(|n| n.name.as_deref() == Some(&request.name))
        {
            let scope = found.scope.clone().unwrap_or_default();
            if scope != "swarm" {
                return Err(SwarmError::NetworkConflict {
                    name: request.name.clone(),
                    driver: found.driver.clone().unwrap_or_default(),
                    scope,
                });
            }
            progress(Progress::Network {
                name: request.name.clone(),
                created: false,
            });
            continue;
        }
        let name = request.name.clone();
        docker
            .create_network(request)
            .await
            .map_err(api(format!("creating overlay network {name}")))?;
        progress(Progress::Network {
            name,
            created: true,
        });
    }
    Ok(())
}

/// What every service future shares.
struct Shared<'a> {
    engine: &'a Engine,
    project: &'a Project,
    graph: &'a Graph,
    manager: &'a Manager,
    options: &'a SwarmOptions,
    began: Instant,
    phases: BTreeMap<String, watch::Sender<Phase>>,
    progress: &'a (dyn Fn(Progress) + Send + Sync),
}

/// Deploys `project` onto the swarm `engine` manages, in dependency order.
pub async fn deploy(
    engine: &Engine,
    project: &Project,
    options: &SwarmOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<DeployReport, SwarmError> {
    let began = Instant::now();
    let manager = manager(engine).await?;
    let graph = Graph::new(project)?;
    // Everything that can be refused is refused before anything is created.
    let mut plans = BTreeMap::new();
    for (name, service) in &project.services {
        // Secrets and configs become Swarm objects (`objects.rs`), not the
        // single-host bind mounts and injected files.
        let mut bare = service.clone();
        bare.secrets.clear();
        bare.configs.clear();
        let container = crate::engine::translate::container_spec(project, &bare, 1)?;
        let spec = spec::service_spec(project, service, &container.body)?;
        let probes = service
            .muster
            .as_ref()
            .map(|m| m.probes.as_slice())
            .unwrap_or_default();
        let gating = gating_probes(name, probes)?;
        plans.insert(name.clone(), (spec, gating));
    }
    for down in &manager.unavailable {
        progress(Progress::NodeDown(down.clone()));
    }
    let ignored = spec::ignored_keys(project);
    for i in &ignored {
        progress(Progress::Ignored(i.clone()));
    }
    let files = objects::wanted(project).map_err(crate::engine::translate::TranslateError::from)?;
    ensure_networks(engine, project, progress).await?;
    let ids = objects::ensure(engine, project, &files).await?;
    for (name, (spec, _)) in plans.iter_mut() {
        if let Some(service) = project.services.get(name) {
            objects::attach(spec, service, &ids);
        }
    }

    let phases = project
        .services
        .keys()
        .map(|s| (s.clone(), watch::channel(Phase::Pending).0))
        .collect();
    let shared = Shared {
        engine,
        project,
        graph: &graph,
        manager: &manager,
        options,
        began,
        phases,
        progress,
    };
    let runs = plans.into_iter().map(|(name, (spec, gating))| {
        let shared = &shared;
        async move {
            let result = run_service(shared, &name, spec, gating).await;
            let phase = if result.is_ok() {
                Phase::Ready
            } else {
                Phase::Failed
            };
            if let Some(tx) = shared.phases.get(&name) {
                tx.send_replace(phase);
            }
            result
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let mut services = Vec::new();
    let mut first_error: Option<(usize, SwarmError)> = None;
    for result in results {
        match result {
            Ok(report) => services.push(report),
            Err((level, e)) => {
                // The root cause (lowest level, not a DependencyFailed) wins.
                let dependent = matches!(e, SwarmError::DependencyFailed { .. });
                let better = match &first_error {
                    None => true,
                    Some((l, prev)) => {
                        let prev_dep = matches!(prev, SwarmError::DependencyFailed { .. });
                        (prev_dep && !dependent) || (prev_dep == dependent && level < *l)
                    }
                };
                if better {
                    first_error = Some((level, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    services.sort_by(|a, b| (a.level, &a.service).cmp(&(b.level, &b.service)));
    Ok(DeployReport {
        stack: project.name.clone(),
        manager,
        ignored,
        services,
        elapsed_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Waits until every dependency of `name` holds its edge's condition.
async fn wait_dependencies(shared: &Shared<'_>, name: &str) -> Result<(), SwarmError> {
    let edges: Vec<_> = shared
        .graph
        .edges()
        .iter()
        .filter(|e| e.from == name && shared.phases.contains_key(&e.to))
        .collect();
    if !edges.is_empty() {
        (shared.progress)(Progress::Waiting {
            service: name.to_string(),
            on: edges.iter().map(|e| e.to.clone()).collect(),
        });
    }
    for edge in edges {
        let want = match edge.condition {
            Condition::ServiceHealthy => Phase::Ready,
            // service_completed_successfully cannot hold on Swarm: started instead (warned).
            Condition::ServiceStarted | Condition::ServiceCompletedSuccessfully => Phase::Started,
        };
        let Some(tx) = shared.phases.get(&edge.to) else {
            continue;
        };
        let mut rx = tx.subscribe();
        let failed = |p: &Phase| *p == Phase::Failed;
        let phase = *rx
            .wait_for(|p| *p >= want || failed(p))
            .await
            .map_err(|_| SwarmError::DependencyFailed {
                service: name.to_string(),
                dependency: edge.to.clone(),
            })?;
        if failed(&phase) {
            return Err(SwarmError::DependencyFailed {
                service: name.to_string(),
                dependency: edge.to.clone(),
            });
        }
    }
    Ok(())
}

/// One service: dependencies, create, follow its tasks until ready.
async fn run_service(
    shared: &Shared<'_>,
    name: &str,
    spec: bollard::models::ServiceSpec,
    gating: Vec<crate::compose::xmuster::ProbeSpec>,
) -> Result<ServiceReport, (usize, SwarmError)> {
    let level = shared.graph.level_of(name).unwrap_or(0);
    let fail = |e: SwarmError| (level, e);
    let service = &shared.project.services[name];
    wait_dependencies(shared, name).await.map_err(fail)?;
    let swarm_name = spec.name.clone().unwrap_or_default();
    let change = super::update::apply(shared.engine, spec)
        .await
        .map_err(fail)?;
    let created_at_ms = crate::clock::now_ms();
    (shared.progress)(Progress::Created {
        service: name.to_string(),
        name: swarm_name.clone(),
        level,
        created: change == Change::Created,
        updated: change == Change::Updated,
    });
    let (started_at_ms, ready_at_ms, required, tasks) =
        follow(shared, name, service, &swarm_name, gating)
            .await
            .map_err(fail)?;
    Ok(ServiceReport {
        service: name.to_string(),
        name: swarm_name,
        level,
        created: change == Change::Created,
        updated: change == Change::Updated,
        created_at_ms,
        started_at_ms,
        ready_at_ms,
        required,
        tasks,
    })
}

/// Follows a service's tasks until `required` of them pass the probes;
/// returns (started ms, ready ms, required, final task states).
async fn follow(
    shared: &Shared<'_>,
    name: &str,
    service: &Service,
    swarm_name: &str,
    gating: Vec<crate::compose::xmuster::ProbeSpec>,
) -> Result<(u64, u64, usize, Vec<TaskState>), SwarmError> {
    let mut watch = TaskWatch::new(
        shared.engine,
        shared.manager,
        shared.project,
        service,
        swarm_name,
        gating,
        shared.progress,
    );
    let period = watch.period();
    let mut started_at = None;
    loop {
        let states = watch.poll(|_| true).await?;
        let required = watch.required(&states);
        let running = states.iter().filter(|s| s.task.is_running()).count();
        if running >= required && started_at.is_none() {
            started_at = Some(crate::clock::now_ms());
            if let Some(tx) = shared.phases.get(name) {
                tx.send_replace(Phase::Started);
            }
        }
        let ready = states.iter().filter(|s| s.ready).count();
        if ready >= required {
            (shared.progress)(Progress::Ready {
                service: name.to_string(),
                ready,
                required,
            });
            let started = started_at.unwrap_or_else(crate::clock::now_ms);
            return Ok((started, crate::clock::now_ms(), required, states));
        }
        check_missing_image(name, service, &states, required)?;
        if let Some(limit) = shared.options.wait_timeout {
            if shared.began.elapsed() >= limit {
                return Err(SwarmError::Timeout {
                    service: name.to_string(),
                    after: limit,
                    tasks: summary(&states),
                });
            }
        }
        tokio::time::sleep(period).await;
    }
}

/// A service whose tasks keep being rejected for a missing image (twice the
/// required count, none running) fails: Swarm would retry forever.
fn check_missing_image(
    name: &str,
    service: &Service,
    states: &[TaskState],
    required: usize,
) -> Result<(), SwarmError> {
    let missing: Vec<&TaskState> = states
        .iter()
        .filter(|s| s.task.is_rejected() && s.task.reason.contains("No such image"))
        .collect();
    let running = states.iter().any(|s| s.task.is_running());
    if running || missing.len() < (2 * required).max(2) {
        return Ok(());
    }
    let mut nodes: Vec<String> = missing.iter().map(|s| s.task.node.clone()).collect();
    nodes.sort();
    nodes.dedup();
    Err(SwarmError::ImageMissing {
        service: name.to_string(),
        image: service.image.clone().unwrap_or_default(),
        nodes: nodes.join(", "),
        reason: missing[0].task.reason.clone(),
    })
}
