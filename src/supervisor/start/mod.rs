//! `muster up`: start a project's services through the engine, each as early
//! as its `depends_on` conditions allow.
//!
//! Networks, volumes, image presence and the project's existing containers
//! are asked for once, at the same time; missing images start pulling at
//! once, each once, a few at a time (`images.rs`). Then every selected service gets
//! its own task. The task waits for its own image (not for the others'), brings its containers to the wanted config (keep,
//! or create / recreate by config hash) without starting them, waits until
//! each of its dependencies' conditions holds (service_started /
//! service_healthy / service_completed_successfully; woken by the
//! dependency's own task, no polling), starts them, and follows them through
//! the engine's event stream (or muster's probes) until they are ready,
//! completed or failed. Nothing waits for a whole "level": a service starts
//! the moment its own dependencies are ready, so the stack is up after the
//! critical path, not the sum of level maxima.
//!
//! Only `start` is on the critical path. Services without dependencies
//! create and start at once; the others create their containers while their
//! dependencies get ready, but only while no service is starting: the engine
//! does much of its work one container at a time, so a create next to a
//! start slows the start (see [`StartSlot`]).
//!
//! States go through [`StateStore`]: pending -> starting -> ready / completed /
//! failed / blocked.
//!
//! This file is the command (selection, order, shared listings, waiting for
//! the end); one service's task is in `service.rs`, its containers in
//! `containers.rs`, following them after the start in `follow.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use super::state::{PullPulse, ServiceState};
use super::store::StateStore;
use crate::compose::graph::{Graph, GraphError};
use crate::compose::{Condition, Project, Service};
use crate::engine::translate::{self, TranslateError};
use crate::engine::watch::{EngineMsg, Reconnect, Watcher};
use crate::engine::{labels, Engine, EngineError};

mod build;
mod containers;
mod follow;
pub mod images;
mod service;

pub use self::build::BuildPolicy;
use self::containers::{launch, prepare, ContainerError, Prepared};
use self::follow::follow;
use self::service::{run_service, waiting_reason};
use super::runner::{StateWrites, StatusWrite};

/// What `muster up` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Services to start; empty = all. Their dependencies are added unless `no_deps`.
    pub services: Vec<String>,
    /// Start only the named services; do not start or wait for their dependencies.
    pub no_deps: bool,
    /// Stop waiting after this long (what started keeps running).
    pub wait_timeout: Option<Duration>,
    /// Set to `true` to stop waiting (Ctrl-C); what started keeps running.
    pub cancel: Option<watch::Receiver<bool>>,
    /// Services whose readiness muster's own probes decide (see [`ProbeGate`]).
    pub probe_gate: Option<ProbeGate>,
    /// When services with `build:` get their image built (`--build`, `--no-build`).
    pub build: BuildPolicy,
    /// `up --pull`: overrides every service's `pull_policy`.
    pub pull: Option<images::PullOverride>,
    /// How many images are pulled at once.
    pub pull_options: images::PullOptions,
    /// Where pull progress goes (the CLI's progress lines); `None`: nowhere.
    pub pull_events: Option<broadcast::Sender<images::PullEvent>>,
    /// The process's engine watcher (the healer's, under `--watch` /
    /// `--serve`); `None`: this `up` starts one for itself.
    pub watcher: Option<Watcher>,
}

/// Hands readiness of the probed services to the probe runner: `up` tells it
/// when their containers run, and waits for the runner's `ready` (written to
/// the same store) instead of the engine's health status.
#[derive(Debug, Clone)]
pub struct ProbeGate {
    pub services: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    UnknownService(#[from] crate::compose::UnknownService),
    #[error("service {service} depends on {dependency}, which is not defined (or not enabled by a profile)")]
    MissingDependency { service: String, dependency: String },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error(transparent)]
    Graph(GraphError),
    #[error(transparent)]
    Translate(#[from] TranslateError),
}

/// How the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpOutcome {
    /// Every selected service is ready or completed.
    Ready,
    /// At least one service failed or is blocked.
    Failed,
    /// `--wait-timeout` passed first.
    TimedOut,
    /// Cancelled (Ctrl-C).
    Cancelled,
}

/// The result of one `up`.
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    pub project: String,
    pub outcome: UpOutcome,
    /// Wall time of the whole `up`.
    #[serde(with = "crate::duration::serde_dur")]
    pub elapsed: Duration,
    /// Selected services in start order (dependencies first).
    pub services: Vec<String>,
    /// Services whose containers were created or recreated (not kept).
    pub recreated: Vec<String>,
    /// `required: false` dependencies that were absent and skipped.
    pub skipped: Vec<String>,
}

/// What a service task tells its dependents.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Every container has been running.
    started: bool,
    /// Every container is healthy (or running, without a healthcheck).
    healthy: bool,
    /// Every container exited with this code (the worst one).
    exit: Option<i64>,
    /// Failed or blocked, with the reason.
    failed: Option<String>,
    /// Containers were created or recreated in this `up`.
    recreated: bool,
}

struct Ctx {
    engine: Engine,
    project: Project,
    /// Read only: `up`'s writes go to the one writer (the probe runner)
    /// through `writes`.
    store: StateStore,
    writes: StateWrites,
    selected: BTreeSet<String>,
    progress: HashMap<String, watch::Sender<Progress>>,
    /// The engine's events for the project; each service task subscribes.
    events: Watcher,
    gate: Option<ProbeGate>,
    /// Per service: use its image, pull it, build it, or refuse (`images.rs`).
    decisions: BTreeMap<String, images::Decision>,
    /// Per image: queued, pulling, ready or failed; each task awaits its own.
    images: images::ImageGate,
    /// The project's containers per service as listed at the start of `up`;
    /// each service takes its own list once.
    existing: std::sync::Mutex<HashMap<String, Vec<crate::engine::ContainerInfo>>>,
    /// How many services may start now and have not finished their start
    /// call yet. Services that still wait for dependencies create their
    /// containers only while this is 0, so creation never slows a start.
    starting: watch::Sender<usize>,
    /// One build per image (see `build.rs`).
    builds: self::build::Builds,
}

impl Ctx {
    fn take_existing(&self, service: &str) -> Vec<crate::engine::ContainerInfo> {
        self.existing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(service)
            .unwrap_or_default()
    }
}

/// A service that may start now and has not finished its start call: while
/// any is held, services still waiting for their dependencies do not create
/// containers (the engine serialises much of the work, so a create running
/// next to a start delays the start, which is on the critical path; the
/// creates run in the time dependencies take to get ready instead).
struct StartSlot<'a>(&'a watch::Sender<usize>);

impl<'a> StartSlot<'a> {
    /// Takes a new slot.
    fn take(starting: &'a watch::Sender<usize>) -> StartSlot<'a> {
        starting.send_modify(|n| *n += 1);
        StartSlot(starting)
    }

    /// A slot counted before the task began (services without dependencies).
    fn adopt(starting: &'a watch::Sender<usize>) -> StartSlot<'a> {
        StartSlot(starting)
    }
}

impl Drop for StartSlot<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Resolves once no service is between "may start" and "start call returned".
async fn no_start_in_flight(mut rx: watch::Receiver<usize>) {
    let _ = rx.wait_for(|n| *n == 0).await.map(|_| ());
}

/// Sends each pull's numbers to the store (for `GET /events`), at most one
/// a second per image, and the last numbers when it ends.
fn forward_pulls(
    store: &StateStore,
    pulls: &BTreeMap<String, Vec<String>>,
    mut events: broadcast::Receiver<images::PullEvent>,
) -> tokio::task::JoinHandle<()> {
    let store = store.clone();
    let services_of = pulls.clone();
    tokio::spawn(async move {
        let mut throttle = images::PullThrottle::default();
        let mut last: HashMap<String, crate::engine::PullProgress> = HashMap::new();
        let pulse = |image: &str, done: bool, progress: crate::engine::PullProgress| PullPulse {
            services: services_of.get(image).cloned().unwrap_or_default(),
            done,
            progress,
        };
        loop {
            let (image, done) = match events.recv().await {
                Ok(images::PullEvent::Progress(p)) => {
                    let image = p.image.clone();
                    last.insert(image.clone(), p);
                    (image, false)
                }
                Ok(images::PullEvent::Done(d)) => (d.image.clone(), true),
                Ok(images::PullEvent::Failed { image, .. }) => (image, true),
                Ok(images::PullEvent::Started { .. }) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if !done && !throttle.admit(&image, Instant::now()) {
                continue;
            }
            let progress = match done {
                true => last.remove(&image),
                false => last.get(&image).cloned(),
            }
            .unwrap_or_else(|| crate::engine::PullProgress {
                image: image.clone(),
                ..Default::default()
            });
            store.publish_pull(pulse(&image, done, progress));
        }
    })
}

/// After Ctrl-C / SIGTERM: a service still pulling or building its image
/// says so (no container was created for it).
async fn mark_interrupted(store: &StateStore, writes: &StateWrites, order: &[String]) {
    // What the service tasks sent before they were stopped is in the store.
    writes.sync().await;
    let snap = store.snapshot();
    for name in order {
        let Some(s) = snap.services.get(name) else {
            continue;
        };
        let busy = s.reason.starts_with("pulling ") || s.reason.starts_with("building ");
        if s.state == ServiceState::Pending && busy {
            let reason = format!("interrupted while {}: no container created", s.reason);
            writes.status(name, StatusWrite::Pull(None));
            writes.set(name, ServiceState::Pending, reason);
        }
    }
}

/// Starts `options.services` (default all) of `project` and waits until they
/// are ready, completed, failed or blocked, the timeout passes, or it is cancelled.
///
/// Errors are for what stops the whole `up` before anything starts (unknown
/// service, cycle, unreachable engine, a network that cannot be created).
/// Per-service failures are states in the store and make the outcome `Failed`.
/// Container creation running while the dependencies get ready.
type PreparingFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Prepared, ContainerError>> + Send + 'a>,
>;

///
/// `writes` reaches the one writer of the store's service state: the
/// supervisor's probe runner ([`super::supervise::Supervision::writes`]),
/// or for a plain `up` a runner without probes
/// ([`StateWrites::own`]); `up` reads the store and sends it every state
/// it decides.
pub async fn up(
    engine: &Engine,
    project: &Project,
    options: &UpOptions,
    writes: &StateWrites,
) -> Result<UpReport, UpError> {
    let store = writes.store();
    let began = Instant::now();
    let (selected, skipped) = select(project, &options.services, options.no_deps)?;
    for edge in &skipped {
        tracing::warn!(%edge, "optional dependency is not defined; skipped");
    }
    let graph = selection_graph(project, &selected)?;
    let order = start_order(&graph);
    // Register every service as pending before anything happens.
    let levels = levels(&graph);
    for name in &order {
        let service = &project.services[name];
        let deps = deps_in(service, &selected);
        let depends_on: Vec<String> = deps.iter().map(|(d, _)| d.clone()).collect();
        let level = levels.get(name).copied().unwrap_or(0);
        let reason = waiting_reason(&deps);
        // The probe runner may have registered the service already (with
        // its probes); otherwise it is added as pending.
        writes.status(
            name,
            StatusWrite::Placed {
                image: service.image.clone(),
                depends_on,
                level,
                waiting: Some(reason),
            },
        );
    }
    // Every selected service is in the store before anything reads it:
    // `wait_settled` must not find an empty selection settled.
    writes.sync().await;

    // Networks and named volumes the selected services use.
    let mut network_keys = BTreeSet::new();
    let mut volume_keys = BTreeSet::new();
    for name in &order {
        let service = &project.services[name];
        network_keys.extend(translate::service_network_keys(service));
        volume_keys.extend(translate::service_volume_keys(service));
    }
    // Networks, volumes, the images and the project's existing containers,
    // asked for once per `up` (not once per service) and all at the same time:
    // this is on the path to the first container start.
    let networks = async {
        for key in &network_keys {
            engine.ensure_network(project, key).await?;
        }
        Ok::<_, EngineError>(())
    };
    let volumes = async {
        for key in &volume_keys {
            engine.ensure_volume(project, key).await?;
        }
        Ok::<_, EngineError>(())
    };
    let wanted_images: BTreeSet<&str> = order
        .iter()
        .filter_map(|n| project.services[n].image.as_deref())
        .collect();
    let local = images::local_images(engine, wanted_images);
    let existing = engine.list_project_containers(&project.name, None);
    let (networks, volumes, local, existing) = tokio::join!(networks, volumes, local, existing);
    networks?;
    volumes?;
    let local = local?;
    let (mut decisions, mut pulls) = images::plan(
        project,
        &order,
        &local,
        |s| options.pull.map(Into::into).or(s.pull_policy),
        crate::clock::now_ms(),
    );
    self::build::apply_policy(options.build, project, &local, &mut decisions, &mut pulls);
    let pull_events = options
        .pull_events
        .clone()
        .unwrap_or_else(|| broadcast::channel(64).0);
    let forward = forward_pulls(store, &pulls, pull_events.subscribe());
    // The images of the services that start first are pulled first.
    let first_use = |services: &[String]| {
        services
            .iter()
            .filter_map(|s| order.iter().position(|o| o == s))
            .min()
            .unwrap_or(usize::MAX)
    };
    let mut pulls: Vec<(String, Vec<String>)> = pulls.into_iter().collect();
    pulls.sort_by_key(|(_, services)| first_use(services));
    let image_gate = images::ImageGate::start(engine, pulls, &options.pull_options, pull_events);
    let mut by_service: HashMap<String, Vec<crate::engine::ContainerInfo>> = HashMap::new();
    for c in existing? {
        by_service.entry(c.service.clone()).or_default().push(c);
    }

    // One event stream for the whole project (the process's one watcher),
    // fanned out to the service tasks. Its `since` is from before it listed
    // the project, and each task subscribes before anything of its own
    // starts, so no start/health/die event is lost.
    let events = options.watcher.clone().unwrap_or_else(|| {
        Watcher::spawn(engine.clone(), project.name.clone(), Reconnect::default())
    });

    let mut progress = HashMap::new();
    let mut receivers = HashMap::new();
    for name in &order {
        let (tx, rx) = watch::channel(Progress::default());
        progress.insert(name.clone(), tx);
        receivers.insert(name.clone(), rx);
    }
    // Services without dependencies may start at once: they hold start slots
    // from the beginning, so nobody else's container creation competes with
    // their start (see [`StartSlot`]).
    let roots = order
        .iter()
        .filter(|n| deps_in(&project.services[*n], &selected).is_empty())
        .count();
    let (starting, _) = watch::channel(roots);
    let ctx = Arc::new(Ctx {
        engine: engine.clone(),
        project: project.clone(),
        store: store.clone(),
        writes: writes.clone(),
        selected: selected.clone(),
        progress,
        events,
        gate: options.probe_gate.clone(),
        decisions,
        images: image_gate,
        existing: std::sync::Mutex::new(by_service),
        starting,
        builds: self::build::builds_for(project, &order),
    });

    let mut tasks = JoinSet::new();
    for name in &order {
        let ctx = ctx.clone();
        let name = name.clone();
        let receivers = receivers.clone();
        tasks.spawn(async move {
            run_service(ctx, name, receivers).await;
        });
    }

    // Wait until every selected service settles, or timeout / cancel.
    let settled = wait_settled(store, &selected);
    let timeout = async {
        match options.wait_timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let cancel = async {
        match options.cancel.clone() {
            Some(mut rx) => {
                if rx.wait_for(|c| *c).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        outcome = settled => outcome,
        _ = timeout => UpOutcome::TimedOut,
        _ = cancel => UpOutcome::Cancelled,
    };
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if outcome == UpOutcome::Cancelled {
        // No container is created for what was still pulling or building;
        // the next `up` pulls (or builds) again and goes on.
        ctx.images.abort();
        mark_interrupted(store, writes, &order).await;
    }
    forward.abort();
    // Everything the service tasks sent is in the store before `up` returns.
    writes.sync().await;

    let recreated = order
        .iter()
        .filter(|n| ctx.progress[*n].borrow().recreated)
        .cloned()
        .collect();
    Ok(UpReport {
        project: project.name.clone(),
        outcome,
        elapsed: began.elapsed(),
        services: order,
        recreated,
        skipped,
    })
}

async fn wait_settled(store: &StateStore, selected: &BTreeSet<String>) -> UpOutcome {
    let mut rx = store.watch();
    loop {
        {
            let snap = rx.borrow_and_update();
            let states: Vec<ServiceState> = selected
                .iter()
                .filter_map(|s| snap.services.get(s).map(|st| st.state))
                .collect();
            let settled = states.iter().all(|s| {
                matches!(
                    s,
                    ServiceState::Ready
                        | ServiceState::Completed
                        | ServiceState::Failed
                        | ServiceState::Blocked
                )
            });
            if settled {
                return if states.iter().all(|s| s.is_ready()) {
                    UpOutcome::Ready
                } else {
                    UpOutcome::Failed
                };
            }
        }
        if rx.changed().await.is_err() {
            return UpOutcome::Failed;
        }
    }
}

/// The selected services (closure over depends_on unless `no_deps`) and the
/// absent optional dependencies that were skipped.
fn select(
    project: &Project,
    wanted: &[String],
    no_deps: bool,
) -> Result<(BTreeSet<String>, Vec<String>), UpError> {
    for name in wanted {
        project.service(name)?;
    }
    let mut selected = BTreeSet::new();
    let mut skipped = Vec::new();
    let mut todo: Vec<String> = if wanted.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        wanted.to_vec()
    };
    while let Some(name) = todo.pop() {
        if !selected.insert(name.clone()) {
            continue;
        }
        let service = &project.services[&name];
        for (dep, edge) in &service.depends_on {
            if !project.services.contains_key(dep) {
                if edge.required {
                    return Err(UpError::MissingDependency {
                        service: name.clone(),
                        dependency: dep.clone(),
                    });
                }
                skipped.push(format!("{name} -> {dep}"));
                continue;
            }
            if !no_deps || wanted.is_empty() {
                todo.push(dep.clone());
            }
        }
    }
    Ok((selected, skipped))
}

/// The part of `project` that `up SERVICES` starts: the named services and,
/// unless `no_deps`, what they depend on; depends_on entries to services
/// outside it are dropped. Supervising only this part keeps services the
/// user did not ask for out of /readyz and away from healing.
pub fn selected_project(
    project: &Project,
    wanted: &[String],
    no_deps: bool,
) -> Result<Project, UpError> {
    let (selected, _) = select(project, wanted, no_deps)?;
    let mut part = project.clone();
    part.services.retain(|name, _| selected.contains(name));
    for service in part.services.values_mut() {
        service.depends_on.retain(|dep, _| selected.contains(dep));
    }
    Ok(part)
}

/// Dependencies of `service` that take part in this `up`, with their condition.
fn deps_in(service: &Service, selected: &BTreeSet<String>) -> Vec<(String, Condition)> {
    service
        .depends_on
        .iter()
        .filter(|(d, _)| selected.contains(*d))
        .map(|(d, e)| (d.clone(), e.condition))
        .collect()
}

/// The dependency graph of the selected services (edges to services outside
/// the selection dropped): a cycle among them is an error that names it.
fn selection_graph(project: &Project, selected: &BTreeSet<String>) -> Result<Graph, UpError> {
    let mut part = Project {
        name: project.name.clone(),
        ..Default::default()
    };
    for name in selected {
        let mut service = project.services[name].clone();
        service.depends_on.retain(|dep, _| selected.contains(dep));
        part.services.insert(name.clone(), service);
    }
    Graph::new_quiet(&part).map_err(|e| match e {
        GraphError::Cycle(path) => UpError::Cycle(path.split(" -> ").map(String::from).collect()),
        other => UpError::Graph(other),
    })
}

/// Dependencies first (the graph's start levels, one after the other).
fn start_order(graph: &Graph) -> Vec<String> {
    graph.levels().iter().flatten().cloned().collect()
}

/// Longest path from a service without dependencies (0) — for display only.
fn levels(graph: &Graph) -> HashMap<String, usize> {
    graph
        .levels()
        .iter()
        .enumerate()
        .flat_map(|(level, names)| names.iter().map(move |n| (n.clone(), level)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::Dependency;

    fn svc(name: &str, deps: &[&str]) -> Service {
        Service {
            name: name.into(),
            image: Some("x".into()),
            replicas: 1,
            depends_on: deps
                .iter()
                .map(|d| {
                    (
                        d.to_string(),
                        Dependency {
                            condition: Condition::ServiceStarted,
                            required: true,
                            restart: false,
                            implicit: false,
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    fn project(services: Vec<Service>) -> Project {
        Project {
            name: "p".into(),
            services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn selection_takes_the_dependency_closure_and_orders_it() {
        let p = project(vec![
            svc("a", &[]),
            svc("b", &["a"]),
            svc("c", &["a"]),
            svc("d", &["b", "c"]),
            svc("e", &[]),
        ]);
        let (sel, _) = select(&p, &["d".into()], false).unwrap();
        assert_eq!(
            sel.iter().cloned().collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        let order = start_order(&selection_graph(&p, &sel).unwrap());
        assert_eq!(order.first().map(String::as_str), Some("a"));
        assert_eq!(order.last().map(String::as_str), Some("d"));
        let (sel, _) = select(&p, &["d".into()], true).unwrap();
        assert_eq!(sel.len(), 1);
        let lv = levels(&selection_graph(&p, &select(&p, &[], false).unwrap().0).unwrap());
        assert_eq!(lv["d"], 2);
        assert!(matches!(
            select(&p, &["zz".into()], false),
            Err(UpError::UnknownService(_))
        ));
    }

    #[test]
    fn a_cycle_is_named() {
        let p = project(vec![svc("a", &["c"]), svc("b", &["a"]), svc("c", &["b"])]);
        let (sel, _) = select(&p, &[], false).unwrap();
        let err = selection_graph(&p, &sel).unwrap_err().to_string();
        assert!(err.contains("a -> c -> b -> a"), "{err}");
    }

    #[test]
    fn optional_absent_dependencies_are_skipped() {
        let mut a = svc("a", &["ghost"]);
        a.depends_on.get_mut("ghost").unwrap().required = false;
        let p = project(vec![a]);
        let (sel, skipped) = select(&p, &[], false).unwrap();
        assert_eq!(sel.len(), 1);
        assert_eq!(skipped, vec!["a -> ghost"]);
        let p = project(vec![svc("a", &["ghost"])]);
        assert!(matches!(
            select(&p, &[], false),
            Err(UpError::MissingDependency { .. })
        ));
    }
}
