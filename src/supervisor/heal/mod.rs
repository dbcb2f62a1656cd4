//! Healing: the part of the supervisor that acts on what the probes and the
//! engine say, while muster runs (`muster serve`, `muster up --watch/--serve`).
//!
//! - A running container whose service turns `unready` (readiness probes failed
//!   past their failure threshold, outside the start window) is restarted, and
//!   so is one whose liveness or startup probe gives up. Restarts go through
//!   the Engine API (stop with the service's `stop_grace_period`, then start),
//!   wait an exponential backoff first, and are limited by a budget per window
//!   ([`policy`]); past the budget the service is `failed` with an alert, and
//!   muster leaves it alone until it is ready again.
//! - A container that exits is handled by its compose restart policy, which
//!   the engine applies (`always`, `unless-stopped`, `on-failure[:N]`): muster
//!   records the exit and counts the engine's restarts, but never restarts an
//!   exited container itself. Under `no` (or when `on-failure` gave up) the
//!   service is `failed` and a notification goes out; exit 0 is `completed`.
//! - After a service was restarted (by anyone), its dependents that declare
//!   `depends_on: {svc: {restart: true}}` are restarted once the dependency's
//!   condition holds again. Dependents of a service that is not ready are
//!   marked `degraded`, naming the dependency.
//! - Restarts, failures and recoveries are logged and sent to the [`Notifier`].
//! - The engine's event stream is followed by [`watch`], which reconnects and
//!   rebuilds the view from the containers' labels; restart counts live here
//!   (and in the durable [`HistoryStore`]), so nothing is lost on a drop.
//!
//! One task owns all of this state (no locks); engine calls (restarts,
//! inspections) run on other tasks and report back, so a slow engine never
//! stalls the probes or the health endpoint.
//!
//! The actor's methods live in files by concern, each an `impl Healer` block:
//! the engine's view of containers (`engine_view.rs`), decisions, triggers and
//! restarts (`restart.rs`), what each snapshot means and the batched write
//! back (`publish.rs`), notifications (`notify.rs`) and restart records in
//! the history store (`history.rs`). This file holds the types and the loop.

mod action;
mod engine_view;
mod history;
pub mod hook;
mod notify;
pub(in crate::supervisor) mod pause;
pub mod policy;
mod publish;
mod replicas;
mod restart;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use bollard::query_parameters::RestartContainerOptions;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::policy::{Budget, Verdict};
use super::runner::{Control, ServiceDecision, StateWrites, StatusWrite};
use super::state::{
    EngineLink, ExitNote, HealStatus, PauseNote, RestartNote, ServiceState, ServiceStatus,
};
use super::store::StateStore;
use crate::clock::now_ms;
use crate::compose::xmuster::MusterService;
use crate::compose::xmuster::{OnUnhealthy, RestartSettings};
use crate::compose::{Condition, Project};
use crate::engine::watch::{ContainerState, EngineMsg, Follower, Reconnect, Watcher};
use crate::engine::{Engine, EngineEvent};
use crate::history::{HistoryOptions, HistoryStore};
use crate::notify::{
    BudgetNote, Notification, Notifier, NotifyError, NotifyEvent, NotifyOptions, RestartBy,
};

use self::history::{write_history, HistoryWrite};
pub use self::history::{RestartRecord, RestartTotals};
pub use self::publish::degraded;

/// How long store changes are gathered before the healer looks at them.
const SNAPSHOT_COALESCE: Duration = Duration::from_millis(100);

/// Restart records kept per service in the history store.
pub(crate) const HISTORY_CAP: usize = 200;

/// How the healer shares the stack with `up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealMode {
    /// `muster serve`: the stack already runs; the healer follows everything at once.
    Serve,
    /// `muster up --watch/--serve`: `up` starts the containers and follows
    /// them until it returns ([`HealHandle::up_finished`]); until then the
    /// healer restarts and records, but leaves first starts, stops and the
    /// state of services without muster probes to `up`.
    Up,
}

/// Everything the healer needs.
pub struct HealOptions {
    pub engine: Engine,
    pub project: Project,
    /// config/muster.yaml's `services:` (used when a service's compose file has no `x-muster.restart`).
    pub config_services: BTreeMap<String, MusterService>,
    pub mode: HealMode,
    /// Durable restart records (budget and counts survive a muster restart).
    pub history: Option<HistoryStore>,
    pub notifier: Notifier,
    pub reconnect: Reconnect,
    /// The resource sampler started with the healer.
    pub telemetry: crate::supervisor::telemetry::TelemetryOptions,
}

/// What the healer needs of muster's settings (built by the settings from
/// flags, environment, the config file and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct HealConfig {
    /// config/muster.yaml's `services:`.
    pub services: BTreeMap<String, MusterService>,
    /// Where restart records live.
    pub history: HistoryOptions,
    /// Where notifications go.
    pub notify: NotifyOptions,
    /// Resource sampling (`telemetry_interval`).
    pub telemetry: crate::supervisor::telemetry::TelemetryOptions,
}

impl HealOptions {
    /// No history, log-only notifications, default reconnect delays.
    pub fn new(engine: Engine, project: Project, mode: HealMode) -> HealOptions {
        HealOptions {
            engine,
            project,
            config_services: BTreeMap::new(),
            mode,
            history: None,
            notifier: Notifier::disabled(),
            reconnect: Reconnect::default(),
            telemetry: Default::default(),
        }
    }

    /// From the settings: the history store (Redis, else the state file) and
    /// the webhook notifier. Call inside the Tokio runtime.
    pub async fn from_config(
        engine: &Engine,
        project: &Project,
        config: &HealConfig,
        mode: HealMode,
    ) -> Result<HealOptions, NotifyError> {
        let notifier = Notifier::from_options(&config.notify)?;
        let history = HistoryStore::open(&config.history, &project.name).await;
        Ok(HealOptions {
            engine: engine.clone(),
            project: project.clone(),
            config_services: config.services.clone(),
            mode,
            history: Some(history),
            notifier,
            reconnect: Reconnect::default(),
            telemetry: config.telemetry.clone(),
        })
    }
}

/// The running healer; dropping it stops it.
pub struct HealHandle {
    tasks: Vec<JoinHandle<()>>,
    follow: tokio_watch::Sender<bool>,
    /// The process's engine watcher; `up` follows the same one.
    watcher: Watcher,
}

impl HealHandle {
    /// `up` returned: from now on the healer also follows first starts, stops
    /// and the services without muster probes.
    pub fn up_finished(&self) {
        self.follow.send_replace(true);
    }

    /// The engine watcher the healer follows, for `up` to follow too (one
    /// event stream per process).
    pub fn watcher(&self) -> &Watcher {
        &self.watcher
    }
}

impl Drop for HealHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the healer. `probed` are the services the probe runner owns;
/// `writes` reaches the runner, the one writer of service state (the
/// healer reads the store and sends it what it saw and decided);
/// `decisions` are the runner's restart requests.
pub fn spawn(
    writes: StateWrites,
    decisions: Option<mpsc::UnboundedReceiver<ServiceDecision>>,
    probed: BTreeSet<String>,
    options: HealOptions,
) -> HealHandle {
    let store = writes.store().clone();
    // Each connection's owner reports its state; the store relays it to `/status`.
    let engine_link = crate::link::LinkReporter::new();
    let mut links = vec![store.follow_link("engine", engine_link.subscribe())];
    if let Some(link) = options.history.as_ref().and_then(HistoryStore::link) {
        links.push(store.follow_link("history", link));
    }
    if let Some(link) = options.notifier.link() {
        links.push(store.follow_link("webhook", link));
    }
    let watcher = Watcher::spawn_linked(
        options.engine.clone(),
        options.project.name.clone(),
        options.reconnect,
        engine_link,
    );
    // Subscribed before the watcher's task first runs: its first view is ours.
    let engine_rx = watcher.subscribe();
    let (follow_tx, follow_rx) = tokio_watch::channel(options.mode == HealMode::Serve);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (history_tx, history_rx) = mpsc::unbounded_channel();
    // Not aborted on drop: it ends when the healer is gone, after writing
    // what was queued (a restart made just before shutdown stays recorded).
    tokio::spawn(write_history(options.history.clone(), history_rx));
    // Paused services (maintenance), read from the history store.
    let (paused_tx, paused_rx) = tokio_watch::channel(BTreeMap::new());
    let mut tasks = links;
    if let Some(history) = options.history.clone() {
        tasks.push(tokio::spawn(pause::poll(history, paused_tx)));
    }
    let healer = Healer::new(writes, probed, &options, done_tx, history_tx);
    let channels = Channels {
        engine_rx,
        decisions,
        done_rx,
        follow_rx,
        paused_rx,
    };
    tasks.push(tokio::spawn(healer.run(options.history, channels)));
    HealHandle {
        tasks,
        follow: follow_tx,
        watcher,
    }
}

/// What asked for a restart.
#[derive(Debug, Clone, PartialEq)]
enum Trigger {
    Unready,
    Liveness,
    Dependency(String),
    /// One replica (this container id) is down while the others serve.
    Replica(String),
}

#[derive(Debug, Clone)]
struct Pending {
    due: Instant,
    delay: Duration,
    reason: String,
    trigger: Trigger,
}

#[derive(Debug, Clone)]
struct InFlight {
    reason: String,
    by: RestartBy,
    attempt: Option<u32>,
    backoff: Option<Duration>,
    /// Unix ms when the restart began.
    began_ms: u64,
    announced: bool,
    containers: Vec<String>,
    /// Only one replica is started again: the service itself did not go
    /// down, so its state, dependents and recovery notice stay as they are.
    replica: bool,
}

#[derive(Debug, Clone)]
struct WaitDep {
    dependency: String,
    condition: Condition,
    /// When the dependency's restart began: its condition must hold after it.
    after_ms: u64,
}

struct Svc {
    name: String,
    settings: RestartSettings,
    /// `x-muster.on_unhealthy`: restart (default), stop, kill or none.
    on_unhealthy: OnUnhealthy,
    /// The compose restart policy as written (`no` when absent).
    policy: String,
    stop_grace: Option<Duration>,
    probed: bool,
    /// Services to restart after this one restarted (`restart: true` edges), with their condition on it.
    restart_dependents: Vec<(String, Condition)>,
    budget: Budget,
    status: HealStatus,
    /// Restarts seen by this process (the `restarts` of services without probes).
    seen_restarts: u32,
    /// The state this healer last sent the runner for a service without
    /// muster probes (the store shows it a moment later).
    written: Option<ServiceState>,
    pending: Option<Pending>,
    in_flight: Option<InFlight>,
    gave_up: bool,
    /// `since_ms` of the unready state already acted on.
    acted_unready_since: Option<u64>,
    last_state: Option<ServiceState>,
    /// A restart or failure was notified: the next `ready` is a recovery.
    troubled: bool,
    wait_dep: Option<WaitDep>,
    /// The alert is about a replica that is down (cleared, with a
    /// recovery notice, once every replica runs again).
    replica_alert: bool,
}

/// Per container.
#[derive(Debug, Clone)]
struct Ctr {
    name: String,
    service: String,
    number: u32,
    running: bool,
    ever_started: bool,
    restart_count: u32,
    started_ns: Option<i128>,
    /// muster is restarting it (its kill/die/start are expected), since when.
    muster_restart: Option<Instant>,
    /// A stop was asked for (a `kill` came before the `die`).
    stop_requested: bool,
    oom: bool,
    /// The engine's `oom` events seen for it (the kernel killed a process in
    /// it for memory), counted while this muster follows it.
    oom_kills: u32,
    has_healthcheck: bool,
    /// The first `kill` since it last started was a SIGKILL (`docker kill`),
    /// not a stop signal (`docker stop`).
    hard_kill: bool,
    image: Option<String>,
    /// Down while other replicas of its service run: since when, and why.
    down: Option<replicas::Down>,
    /// Unix ms of the last change muster saw (start, exit, stop).
    since_ms: u64,
}

impl Ctr {
    fn from_state(s: &ContainerState) -> Ctr {
        Ctr {
            name: s.name.clone(),
            service: s.service.clone(),
            number: s.number,
            running: s.running,
            ever_started: s.started_ns.is_some(),
            restart_count: s.restart_count,
            started_ns: s.started_ns,
            muster_restart: None,
            stop_requested: false,
            oom: s.oom_killed,
            oom_kills: u32::from(s.oom_killed),
            has_healthcheck: s.has_healthcheck,
            hard_kill: false,
            image: s.image.clone(),
            down: None,
            since_ms: now_ms(),
        }
    }
}

struct Done {
    service: String,
    result: Result<(), String>,
}

/// What the healer's loop listens to.
struct Channels {
    engine_rx: Follower,
    decisions: Option<mpsc::UnboundedReceiver<ServiceDecision>>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    follow_rx: tokio_watch::Receiver<bool>,
    /// The paused services, whenever they change.
    paused_rx: tokio_watch::Receiver<BTreeMap<String, PauseNote>>,
}

struct Healer {
    /// Read only: writes go to the runner through `writes` / `control`.
    store: StateStore,
    writes: StateWrites,
    control: mpsc::UnboundedSender<Control>,
    engine: Engine,
    project: String,
    working_dir: PathBuf,
    following: bool,
    services: BTreeMap<String, Svc>,
    containers: HashMap<String, Ctr>,
    notifier: Notifier,
    done_tx: mpsc::UnboundedSender<Done>,
    history_tx: mpsc::UnboundedSender<HistoryWrite>,
    synced: bool,
}

fn fmt(d: Duration) -> String {
    crate::duration::format(d)
}

impl Healer {
    fn new(
        writes: StateWrites,
        probed: BTreeSet<String>,
        options: &HealOptions,
        done_tx: mpsc::UnboundedSender<Done>,
        history_tx: mpsc::UnboundedSender<HistoryWrite>,
    ) -> Healer {
        let project = &options.project;
        // A project that reached the healer has been loaded, so its graph
        // builds; without one, no `restart: true` dependents are followed.
        let graph = match crate::compose::graph::Graph::new_quiet(project) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!(error = %e, "no dependency graph; dependents are not restarted with their dependency");
                None
            }
        };
        let mut services = BTreeMap::new();
        for (name, service) in &project.services {
            let settings = service
                .muster
                .as_ref()
                .and_then(|m| m.restart.clone())
                .or_else(|| {
                    options
                        .config_services
                        .get(name)
                        .and_then(|m| m.restart.clone())
                })
                .unwrap_or_default();
            let on_unhealthy = service
                .muster
                .as_ref()
                .or_else(|| options.config_services.get(name))
                .map(|m| m.on_unhealthy)
                .unwrap_or_default();
            // The graph's dependents, those whose edge says `restart: true`,
            // and those in this service's network namespace: a restart of X
            // gives X a new namespace (same container id), which a dependent
            // only joins by restarting itself.
            let in_namespace = format!("service:{name}");
            let restart_dependents = graph
                .as_ref()
                .map(|g| g.dependents(name))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|other| {
                    let dependent = &project.services[other];
                    let joins = dependent.network_mode.as_deref() == Some(in_namespace.as_str());
                    dependent
                        .depends_on
                        .get(name)
                        .filter(|edge| edge.restart || joins)
                        .map(|edge| (other.to_string(), edge.condition))
                })
                .collect();
            let status = HealStatus {
                supervised: true,
                budget: settings.budget,
                window_ms: settings.window.as_millis() as u64,
                ..HealStatus::default()
            };
            services.insert(
                name.clone(),
                Svc {
                    name: name.clone(),
                    on_unhealthy,
                    policy: service.restart.clone().unwrap_or_else(|| "no".into()),
                    stop_grace: service.stop_grace_period,
                    probed: probed.contains(name),
                    restart_dependents,
                    budget: Budget::default(),
                    status,
                    settings,
                    seen_restarts: 0,
                    written: None,
                    pending: None,
                    in_flight: None,
                    gave_up: false,
                    acted_unready_since: None,
                    last_state: None,
                    troubled: false,
                    wait_dep: None,
                    replica_alert: false,
                },
            );
        }
        Healer {
            store: writes.store().clone(),
            control: writes.control(),
            writes,
            engine: options.engine.clone(),
            project: project.name.clone(),
            working_dir: project.working_dir.clone(),
            following: options.mode == HealMode::Serve,
            services,
            containers: HashMap::new(),
            notifier: options.notifier.clone(),
            done_tx,
            history_tx,
            synced: false,
        }
    }

    async fn run(mut self, history: Option<HistoryStore>, channels: Channels) {
        let Channels {
            mut engine_rx,
            decisions,
            mut done_rx,
            mut follow_rx,
            mut paused_rx,
        } = channels;
        let mut paused_open = true;
        // Say at once that exits of these services are judged here (`up` reads it).
        let snap = self.store.snapshot();
        self.publish(&snap, degraded(&snap));
        if let Some(h) = &history {
            self.load_history(h).await;
        }
        let (mut decisions, mut decisions_open) = match decisions {
            Some(rx) => (rx, true),
            None => (mpsc::unbounded_channel().1, false),
        };
        let mut snapshots = self.store.watch();
        let mut follow_open = true;
        // Store changes (every probe flush) are looked at together, at most
        // once per SNAPSHOT_COALESCE: nothing here needs to react faster.
        let mut look_at: Option<Instant> = None;
        self.on_snapshot();
        loop {
            let due = self
                .services
                .values()
                .filter_map(|s| s.pending.as_ref().map(|p| p.due))
                .min();
            tokio::select! {
                _ = sleep_until(look_at), if look_at.is_some() => {
                    look_at = None;
                    self.on_snapshot();
                    continue;
                }
                msg = engine_rx.recv() => match msg {
                    Some(msg) => self.on_engine(msg),
                    None => return,
                },
                d = decisions.recv(), if decisions_open => match d {
                    Some(d) => self.on_decision(d),
                    None => decisions_open = false,
                },
                Some(done) = done_rx.recv() => self.on_done(done),
                changed = snapshots.changed(), if look_at.is_none() => {
                    if changed.is_err() {
                        return;
                    }
                    look_at = Some(Instant::now() + SNAPSHOT_COALESCE);
                    continue;
                }
                changed = follow_rx.changed(), if follow_open => {
                    if changed.is_err() {
                        follow_open = false;
                    } else if *follow_rx.borrow_and_update() && !self.following {
                        self.following = true;
                        tracing::debug!("up finished: following every service");
                    }
                }
                changed = paused_rx.changed(), if paused_open => {
                    if changed.is_err() {
                        paused_open = false;
                    } else {
                        let paused = paused_rx.borrow_and_update().clone();
                        self.set_paused(&paused);
                    }
                }
                _ = sleep_until(due), if due.is_some() => self.on_due(),
            }
            self.on_snapshot();
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
