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

pub mod hook;
pub mod policy;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use bollard::query_parameters::RestartContainerOptions;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::policy::{Budget, RestartSettings, Verdict};
use self::watch::{ContainerState, EngineMsg, Reconnect};
use super::runner::{Control, ServiceDecision};
use super::state::{EngineLink, ExitNote, HealStatus, RestartNote, ServiceState, ServiceStatus};
use super::store::StateStore;
use crate::clock::now_ms;
use crate::compose::xmuster::MusterService;
use crate::compose::{Condition, Project};
use crate::engine::{Engine, EngineEvent};
use crate::history::{HistoryOptions, HistoryStore};
use crate::notify::{
    BudgetNote, Notification, Notifier, NotifyError, NotifyEvent, NotifyOptions, RestartBy,
};

/// How long store changes are gathered before the healer looks at them.
const SNAPSHOT_COALESCE: Duration = Duration::from_millis(100);

/// Restart records kept per service in the history store.
const HISTORY_CAP: usize = 200;

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
        })
    }
}

/// The running healer; dropping it stops it.
pub struct HealHandle {
    tasks: Vec<JoinHandle<()>>,
    follow: tokio_watch::Sender<bool>,
}

impl HealHandle {
    /// `up` returned: from now on the healer also follows first starts, stops
    /// and the services without muster probes.
    pub fn up_finished(&self) {
        self.follow.send_replace(true);
    }
}

impl Drop for HealHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the healer. `probed` are the services the probe runner owns
/// (`control` reaches it); `decisions` are its restart requests.
pub fn spawn(
    store: StateStore,
    control: mpsc::UnboundedSender<Control>,
    decisions: Option<mpsc::UnboundedReceiver<ServiceDecision>>,
    probed: BTreeSet<String>,
    options: HealOptions,
) -> HealHandle {
    let (engine_tx, engine_rx) = mpsc::channel(1024);
    let (follow_tx, follow_rx) = tokio_watch::channel(options.mode == HealMode::Serve);
    let watcher = tokio::spawn(watch::run(
        options.engine.clone(),
        options.project.name.clone(),
        engine_tx,
        options.reconnect,
    ));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (history_tx, history_rx) = mpsc::unbounded_channel();
    // Not aborted on drop: it ends when the healer is gone, after writing
    // what was queued (a restart made just before shutdown stays recorded).
    tokio::spawn(write_history(options.history.clone(), history_rx));
    let healer = Healer::new(store, control, probed, &options, done_tx, history_tx);
    let main = tokio::spawn(healer.run(options.history, engine_rx, decisions, done_rx, follow_rx));
    HealHandle {
        tasks: vec![watcher, main],
        follow: follow_tx,
    }
}

/// One restart as kept in the history store (`restarts:{service}`, newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartRecord {
    pub at_ms: u64,
    pub by: RestartBy,
    pub reason: String,
    pub containers: Vec<String>,
}

/// Totals kept in the history store (`restart-totals:{service}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartTotals {
    #[serde(default)]
    pub muster: u32,
    #[serde(default)]
    pub external: u32,
}

enum HistoryWrite {
    Record {
        service: String,
        record: RestartRecord,
        totals: RestartTotals,
    },
}

/// Writes restart records in order, off the healer's task.
async fn write_history(
    history: Option<HistoryStore>,
    mut rx: mpsc::UnboundedReceiver<HistoryWrite>,
) {
    while let Some(HistoryWrite::Record {
        service,
        record,
        totals,
    }) = rx.recv().await
    {
        let Some(h) = &history else { continue };
        let value = serde_json::to_value(&record).unwrap_or_default();
        if let Err(e) = h
            .push(&format!("restarts:{service}"), &value, HISTORY_CAP)
            .await
        {
            tracing::warn!(service = %service, error = %e, "cannot record the restart in the history store");
        }
        let value = serde_json::to_value(&totals).unwrap_or_default();
        if let Err(e) = h.set(&format!("restart-totals:{service}"), &value).await {
            tracing::warn!(service = %service, error = %e, "cannot record restart totals in the history store");
        }
    }
}

/// What asked for a restart.
#[derive(Debug, Clone, PartialEq)]
enum Trigger {
    Unready,
    Liveness,
    Dependency(String),
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
    pending: Option<Pending>,
    in_flight: Option<InFlight>,
    gave_up: bool,
    /// `since_ms` of the unready state already acted on.
    acted_unready_since: Option<u64>,
    last_state: Option<ServiceState>,
    /// A restart or failure was notified: the next `ready` is a recovery.
    troubled: bool,
    wait_dep: Option<WaitDep>,
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
    has_healthcheck: bool,
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
            has_healthcheck: s.has_healthcheck,
        }
    }
}

struct Done {
    service: String,
    result: Result<(), String>,
}

struct Healer {
    store: StateStore,
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
        store: StateStore,
        control: mpsc::UnboundedSender<Control>,
        probed: BTreeSet<String>,
        options: &HealOptions,
        done_tx: mpsc::UnboundedSender<Done>,
        history_tx: mpsc::UnboundedSender<HistoryWrite>,
    ) -> Healer {
        let project = &options.project;
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
            let restart_dependents = project
                .services
                .values()
                .filter_map(|other| {
                    other
                        .depends_on
                        .get(name)
                        .filter(|edge| edge.restart)
                        .map(|edge| (other.name.clone(), edge.condition))
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
                    policy: service.restart.clone().unwrap_or_else(|| "no".into()),
                    stop_grace: service.stop_grace_period,
                    probed: probed.contains(name),
                    restart_dependents,
                    budget: Budget::default(),
                    status,
                    settings,
                    seen_restarts: 0,
                    pending: None,
                    in_flight: None,
                    gave_up: false,
                    acted_unready_since: None,
                    last_state: None,
                    troubled: false,
                    wait_dep: None,
                },
            );
        }
        Healer {
            store,
            control,
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

    /// Loads restart records and totals from the history store.
    async fn load_history(&mut self, history: &HistoryStore) {
        let now = now_ms();
        for svc in self.services.values_mut() {
            let key = format!("restarts:{}", svc.name);
            match history.list(&key, HISTORY_CAP).await {
                Ok(values) => {
                    let records: Vec<RestartRecord> = values
                        .into_iter()
                        .filter_map(|v| serde_json::from_value(v).ok())
                        .collect();
                    let muster: Vec<u64> = records
                        .iter()
                        .filter(|r| r.by == RestartBy::Muster)
                        .map(|r| r.at_ms)
                        .collect();
                    svc.budget = Budget::from_records(muster);
                    svc.status.budget_used = svc.budget.used(&svc.settings, now);
                    svc.status.last_restart = records.first().map(|r| RestartNote {
                        at_ms: r.at_ms,
                        by: r.by.as_str().to_string(),
                        reason: r.reason.clone(),
                        backoff_ms: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(service = %svc.name, error = %e, "cannot read restart history; the budget starts empty")
                }
            }
            match history.get(&format!("restart-totals:{}", svc.name)).await {
                Ok(Some(v)) => {
                    if let Ok(t) = serde_json::from_value::<RestartTotals>(v) {
                        svc.status.muster_restarts = t.muster;
                        svc.status.external_restarts = t.external;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(service = %svc.name, error = %e, "cannot read restart totals")
                }
            }
        }
        tracing::debug!(history = %history.describe(), "restart history loaded");
    }

    async fn run(
        mut self,
        history: Option<HistoryStore>,
        mut engine_rx: mpsc::Receiver<EngineMsg>,
        decisions: Option<mpsc::UnboundedReceiver<ServiceDecision>>,
        mut done_rx: mpsc::UnboundedReceiver<Done>,
        mut follow_rx: tokio_watch::Receiver<bool>,
    ) {
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
                _ = sleep_until(due), if due.is_some() => self.on_due(),
            }
            self.on_snapshot();
        }
    }

    // ---- engine -------------------------------------------------------

    fn on_engine(&mut self, msg: EngineMsg) {
        match msg {
            EngineMsg::Resync {
                containers,
                reconnect,
            } => self.on_resync(containers, reconnect),
            EngineMsg::Event { event, state } => self.on_event(event, state.map(|s| *s)),
            EngineMsg::Down { error, retry_in } => {
                tracing::warn!(error = %error, retry_in = %fmt(retry_in), "engine event stream lost; reconnecting");
                self.update_link(|l| {
                    l.connected = false;
                    l.since_ms = now_ms();
                    l.last_error = Some(error);
                });
            }
        }
    }

    fn on_resync(&mut self, list: Vec<ContainerState>, reconnect: bool) {
        let first = !self.synced;
        self.synced = true;
        let mut seen = BTreeSet::new();
        for state in list {
            if !self.services.contains_key(&state.service) {
                continue;
            }
            seen.insert(state.id.clone());
            let Some(old) = self.containers.get(&state.id).cloned() else {
                let c = Ctr::from_state(&state);
                let running = c.running;
                let service = c.service.clone();
                self.containers.insert(state.id.clone(), c);
                if !first && running {
                    // Created and started while muster was not listening.
                    self.first_start(&service);
                }
                continue;
            };
            let service = old.service.clone();
            let restarted_by_engine = state.restart_count.saturating_sub(old.restart_count);
            let started_again = state.started_ns.is_some()
                && state.started_ns != old.started_ns
                && old.ever_started;
            let ours = old.muster_restart.is_some();
            if let Some(c) = self.containers.get_mut(&state.id) {
                c.running = state.running;
                c.ever_started |= state.started_ns.is_some();
                c.restart_count = state.restart_count;
                c.started_ns = state.started_ns;
                c.oom = state.oom_killed;
                if ours
                    && c.muster_restart
                        .is_some_and(|t| t.elapsed() > Duration::from_secs(120))
                {
                    c.muster_restart = None;
                }
            }
            if restarted_by_engine > 0 {
                self.observe_restart(
                    &service,
                    RestartBy::Engine,
                    restarted_by_engine,
                    "restarted by the engine's restart policy while muster was not listening"
                        .into(),
                    state.running,
                );
            } else if started_again && !ours && state.running {
                self.observe_restart(
                    &service,
                    RestartBy::External,
                    1,
                    "started again while muster was not listening".into(),
                    true,
                );
            } else if ours && state.running && started_again {
                self.muster_container_started(&state.id);
            }
            if old.running && !state.running && !ours {
                // Died while muster was not listening.
                let code = state.exit_code.unwrap_or(-1);
                let policy = self
                    .services
                    .get(&service)
                    .map(|s| s.policy.clone())
                    .unwrap_or_default();
                let restarting = engine_restarts_it(&policy, code, old.restart_count, Some(&state));
                self.handle_exit(&state.id, code, restarting, state.oom_killed);
            }
        }
        let gone: Vec<String> = self
            .containers
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.destroyed(&id);
        }
        for svc in self.services.values_mut() {
            svc.status.engine_restarts = self
                .containers
                .values()
                .filter(|c| c.service == svc.name)
                .map(|c| c.restart_count)
                .sum();
        }
        let count = self.containers.len();
        if reconnect {
            tracing::info!(
                containers = count,
                "engine event stream reconnected; view rebuilt from container labels"
            );
        } else {
            tracing::debug!(
                containers = count,
                "engine view built from container labels"
            );
        }
        self.update_link(|l| {
            l.connected = true;
            l.since_ms = now_ms();
            if reconnect {
                l.reconnects += 1;
            }
        });
    }

    /// Changes the engine link, which lives in the snapshot (`/status`;
    /// followers watch the store).
    fn update_link(&mut self, change: impl FnOnce(&mut EngineLink)) {
        let mut link = self.store.snapshot().engine.clone().unwrap_or_default();
        change(&mut link);
        self.store.set_engine_link(link);
    }

    fn on_event(&mut self, ev: EngineEvent, state: Option<ContainerState>) {
        let service = if ev.service.is_empty() {
            state
                .as_ref()
                .map(|s| s.service.clone())
                .unwrap_or_default()
        } else {
            ev.service.clone()
        };
        if !self.services.contains_key(&service) {
            return;
        }
        let id = ev.container_id.clone();
        if !self.containers.contains_key(&id) {
            if ev.action == "destroy" {
                return;
            }
            let mut c = match &state {
                Some(s) => Ctr::from_state(s),
                None => Ctr {
                    name: id.chars().take(12).collect(),
                    service: service.clone(),
                    number: 0,
                    running: false,
                    ever_started: false,
                    restart_count: 0,
                    started_ns: None,
                    muster_restart: None,
                    stop_requested: false,
                    oom: false,
                    has_healthcheck: false,
                },
            };
            // Seen first through this event: its state is what the event says.
            c.running = false;
            c.ever_started = false;
            c.restart_count = state.as_ref().map(|s| s.restart_count).unwrap_or(0);
            self.containers.insert(id.clone(), c);
        }
        if let (Some(s), Some(c)) = (&state, self.containers.get_mut(&id)) {
            c.name.clone_from(&s.name);
            c.number = s.number;
            c.has_healthcheck = s.has_healthcheck;
        }
        match ev.action.as_str() {
            "start" => self.on_start(&id, state),
            "kill" => {
                if let Some(c) = self.containers.get_mut(&id) {
                    if c.muster_restart.is_none() && c.running {
                        c.stop_requested = true;
                    }
                }
            }
            "oom" => {
                if let Some(c) = self.containers.get_mut(&id) {
                    c.oom = true;
                }
            }
            "die" => {
                let Some(c) = self.containers.get_mut(&id) else {
                    return;
                };
                if !c.running {
                    return; // already known (replayed after a reconnect)
                }
                c.running = false;
                if c.muster_restart.is_some() {
                    return;
                }
                let stop_requested = std::mem::take(&mut c.stop_requested);
                let oom =
                    std::mem::take(&mut c.oom) || state.as_ref().is_some_and(|s| s.oom_killed);
                let code = ev.exit_code.unwrap_or(-1);
                let count_before = c.restart_count;
                if stop_requested && !oom {
                    self.stopped(&id);
                } else {
                    let policy = self
                        .services
                        .get(&service)
                        .map(|s| s.policy.clone())
                        .unwrap_or_default();
                    let restarting =
                        engine_restarts_it(&policy, code, count_before, state.as_ref());
                    self.handle_exit(&id, code, restarting, oom);
                }
            }
            "destroy" => self.destroyed(&id),
            "health_status" => {
                let health = ev
                    .health
                    .clone()
                    .or_else(|| state.as_ref().and_then(|s| s.health.clone()));
                self.on_health(&service, health.as_deref());
            }
            _ => {}
        }
    }

    fn on_start(&mut self, id: &str, state: Option<ContainerState>) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        if c.running {
            return; // replayed, or already seen through a resync
        }
        c.running = true;
        c.stop_requested = false;
        let was_started = c.ever_started;
        c.ever_started = true;
        let previous_count = c.restart_count;
        if let Some(s) = &state {
            c.restart_count = s.restart_count;
            c.started_ns = s.started_ns;
        }
        let service = c.service.clone();
        if c.muster_restart.is_some() {
            self.muster_container_started(id);
            return;
        }
        let by_engine = state
            .as_ref()
            .map(|s| s.restart_count.saturating_sub(previous_count))
            .unwrap_or(0);
        if by_engine > 0 {
            if let Some(svc) = self.services.get_mut(&service) {
                svc.status.engine_restarts = svc.status.engine_restarts.saturating_add(by_engine);
            }
            let policy = self
                .services
                .get(&service)
                .map(|s| s.policy.clone())
                .unwrap_or_default();
            self.observe_restart(
                &service,
                RestartBy::Engine,
                0,
                format!("restarted by the engine (restart: {policy})"),
                true,
            );
        } else if !was_started {
            if self.following {
                self.first_start(&service);
            }
        } else if self.following {
            self.observe_restart(
                &service,
                RestartBy::External,
                1,
                "started again outside muster (docker start / docker restart)".into(),
                true,
            );
        }
    }

    /// A container of a service muster is restarting runs again.
    fn muster_container_started(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.muster_restart = None;
        let service = c.service.clone();
        let announce = match self
            .services
            .get_mut(&service)
            .and_then(|s| s.in_flight.as_mut())
        {
            Some(fl) if !fl.announced => {
                fl.announced = true;
                true
            }
            _ => false,
        };
        if announce {
            self.announce_restart(&service);
        }
    }

    /// Tells the runner (or, for services without probes, the store) that the
    /// service's containers run again: a fresh start window from now.
    fn announce_restart(&mut self, service: &str) {
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        svc.seen_restarts = svc.seen_restarts.saturating_add(1);
        if svc.probed {
            let _ = self.control.send(Control::Restarted {
                service: service.to_string(),
            });
        } else if self.following {
            let restarts = svc.seen_restarts;
            let healthcheck = self.has_healthcheck(service);
            self.store.update(service, |s| s.restarts = restarts);
            self.engine_state_started(service, healthcheck, "container restarted");
        }
    }

    fn has_healthcheck(&self, service: &str) -> bool {
        self.containers
            .values()
            .any(|c| c.service == service && c.has_healthcheck)
    }

    /// State of a service muster has no probes for, when its container starts:
    /// `starting` until the engine's healthcheck answers, or `ready` without one.
    fn engine_state_started(&self, service: &str, healthcheck: bool, why: &str) {
        if healthcheck {
            self.store.transition(
                service,
                ServiceState::Starting,
                format!("{why}; waiting for the healthcheck"),
            );
        } else {
            self.store
                .transition(service, ServiceState::Starting, why.to_string());
            self.store
                .transition(service, ServiceState::Ready, format!("running ({why})"));
        }
    }

    /// A container that was never started before now runs.
    fn first_start(&mut self, service: &str) {
        if !self.following {
            return;
        }
        let Some(svc) = self.services.get(service) else {
            return;
        };
        if svc.probed {
            let _ = self.control.send(Control::Started {
                service: service.to_string(),
            });
        } else {
            let healthcheck = self.has_healthcheck(service);
            self.engine_state_started(service, healthcheck, "container started");
        }
    }

    /// Someone other than muster restarted containers of `service` (`count`
    /// restarts; 0 = already counted by the caller).
    fn observe_restart(
        &mut self,
        service: &str,
        by: RestartBy,
        count: u32,
        reason: String,
        running: bool,
    ) {
        let at = now_ms();
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        match by {
            RestartBy::Engine => {
                svc.status.engine_restarts = svc.status.engine_restarts.saturating_add(count)
            }
            RestartBy::External => {
                svc.status.external_restarts = svc.status.external_restarts.saturating_add(count)
            }
            _ => {}
        }
        svc.status.last_restart = Some(RestartNote {
            at_ms: at,
            by: by.as_str().to_string(),
            reason: reason.clone(),
            backoff_ms: None,
        });
        // The engine's own restarts (a crash loop under `restart: always`) are
        // notified one by one, without a "recovered" after each.
        if by != RestartBy::Engine {
            svc.troubled = true;
        }
        tracing::warn!(service = %service, by = by.as_str(), reason = %reason, "service restarted");
        if by == RestartBy::External {
            let record = RestartRecord {
                at_ms: at,
                by,
                reason: reason.clone(),
                containers: self.container_names(service),
            };
            self.record(service, record);
        }
        if running {
            self.announce_restart(service);
        }
        self.notify_restart(
            service,
            &reason,
            Extra {
                by: Some(by),
                ..Extra::default()
            },
        );
        self.restart_dependents(service, at);
    }

    fn handle_exit(&mut self, id: &str, code: i64, restarting: bool, oom: bool) {
        let Some(c) = self.containers.get(id) else {
            return;
        };
        let service = c.service.clone();
        let name = c.name.clone();
        let Some(svc) = self.services.get_mut(&service) else {
            return;
        };
        let at = now_ms();
        svc.status.last_exit = Some(ExitNote {
            at_ms: at,
            container: name.clone(),
            code,
            engine_restarts_it: restarting,
            oom_killed: oom,
        });
        let oom_text = if oom { " (out of memory)" } else { "" };
        let mut reason = format!("container {name} exited with code {code}{oom_text}");
        let one_shot = code == 0 && !restarting && !oom;
        if restarting {
            reason.push_str(&format!(
                "; the engine restarts it (restart: {})",
                svc.policy
            ));
            tracing::warn!(service = %service, container = %name, code, "container exited; the engine's restart policy restarts it");
        } else if !one_shot {
            let policy = svc.policy.clone();
            reason.push_str(&format!("; restart policy `{policy}` does not restart it"));
            tracing::error!(service = %service, container = %name, code, policy = %policy, "container exited and is not restarted");
            svc.status.alert = Some(reason.clone());
            svc.troubled = true;
        } else {
            tracing::info!(service = %service, container = %name, "container exited 0");
        }
        let probed = svc.probed;
        if probed {
            let _ = self.control.send(Control::Exited {
                service: service.clone(),
                code,
                one_shot,
            });
        } else if self.following {
            let to = if one_shot {
                ServiceState::Completed
            } else {
                ServiceState::Failed
            };
            self.store.transition(&service, to, reason.clone());
        }
        if !restarting && !one_shot {
            self.notify(&service, NotifyEvent::Failed, &reason, Extra::default());
        }
    }

    /// A container was stopped on purpose (`docker stop`, `muster down`).
    fn stopped(&mut self, id: &str) {
        let Some(service) = self.containers.get(id).map(|c| c.service.clone()) else {
            return;
        };
        if !self.following {
            return;
        }
        let any_running = self
            .containers
            .values()
            .any(|c| c.service == service && c.running);
        if any_running {
            return;
        }
        tracing::info!(service = %service, "containers stopped");
        self.set_stopped(&service, "container stopped");
    }

    fn set_stopped(&mut self, service: &str, reason: &str) {
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        svc.pending = None;
        svc.wait_dep = None;
        if svc.probed {
            let _ = self.control.send(Control::Stopped {
                service: service.to_string(),
                reason: reason.to_string(),
            });
        } else {
            self.store
                .transition(service, ServiceState::Stopped, reason);
        }
    }

    fn destroyed(&mut self, id: &str) {
        let Some(c) = self.containers.remove(id) else {
            return;
        };
        let left = self.containers.values().any(|o| o.service == c.service);
        if !left && self.following {
            let state = self
                .store
                .snapshot()
                .services
                .get(&c.service)
                .map(|s| s.state);
            if state != Some(ServiceState::Stopped) {
                self.set_stopped(&c.service, "containers removed");
            }
        }
    }

    fn on_health(&mut self, service: &str, health: Option<&str>) {
        let Some(svc) = self.services.get(service) else {
            return;
        };
        if svc.probed || !self.following {
            return;
        }
        match health {
            Some("healthy") => self
                .store
                .transition(service, ServiceState::Ready, "healthy"),
            Some("unhealthy") => self.store.transition(
                service,
                ServiceState::Unready,
                "healthcheck reports unhealthy",
            ),
            _ => {}
        }
    }

    // ---- decisions, triggers, restarts ---------------------------------

    fn on_decision(&mut self, d: ServiceDecision) {
        let super::machine::Decision::Restart { reason } = d.decision;
        let Some(svc) = self.services.get(&d.service) else {
            return;
        };
        if !svc.settings.on_liveness || svc.settings.budget == 0 {
            let why = if svc.settings.budget == 0 {
                "restart.budget is 0"
            } else {
                "restart.on_liveness is off"
            };
            let text = format!("{reason}; muster does not restart it ({why})");
            tracing::error!(service = %d.service, reason = %text, "probe gave up on the service");
            if let Some(svc) = self.services.get_mut(&d.service) {
                svc.status.alert = Some(text.clone());
                svc.troubled = true;
            }
            self.notify(&d.service, NotifyEvent::Failed, &text, Extra::default());
            return;
        }
        self.request_restart(&d.service, Trigger::Liveness, reason);
    }

    fn running_ids(&self, service: &str) -> Vec<String> {
        let mut ids: Vec<(&u32, &String)> = self
            .containers
            .iter()
            .filter(|(_, c)| c.service == service && c.running)
            .map(|(id, c)| (&c.number, id))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id.clone()).collect()
    }

    fn container_names(&self, service: &str) -> Vec<String> {
        let mut names: Vec<(u32, String)> = self
            .containers
            .values()
            .filter(|c| c.service == service)
            .map(|c| (c.number, c.name.clone()))
            .collect();
        names.sort();
        names.into_iter().map(|(_, n)| n).collect()
    }

    /// Schedules a restart after the backoff, or gives up when the budget is spent.
    fn request_restart(&mut self, service: &str, trigger: Trigger, reason: String) {
        let running = !self.running_ids(service).is_empty();
        let now = now_ms();
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        if svc.gave_up {
            tracing::debug!(service = %service, "restart budget already spent; not restarting");
            return;
        }
        if svc.pending.is_some() || svc.in_flight.is_some() {
            return;
        }
        if !running {
            tracing::debug!(service = %service, "no running container; left to the restart policy");
            return;
        }
        match svc.budget.check(&svc.settings, now) {
            Verdict::Disabled => {
                tracing::info!(service = %service, reason = %reason, "muster does not restart this service (restart.budget is 0)");
            }
            Verdict::Exhausted { used } => {
                svc.gave_up = true;
                svc.troubled = true;
                let text = format!(
                    "restart budget exhausted: {used} restarts in {}; muster stopped restarting it (last problem: {reason})",
                    fmt(svc.settings.window)
                );
                svc.status.alert = Some(text.clone());
                tracing::error!(service = %service, alert = %text, "service failed");
                self.store
                    .transition(service, ServiceState::Failed, text.clone());
                self.notify(service, NotifyEvent::Failed, &text, Extra::default());
            }
            Verdict::Restart { delay, attempt } => {
                tracing::warn!(service = %service, reason = %reason, delay = %fmt(delay), attempt, budget = svc.settings.budget, window = %fmt(svc.settings.window), "restarting after the backoff");
                svc.status.next_restart_ms = Some(now + delay.as_millis() as u64);
                svc.status.next_delay_ms = Some(delay.as_millis() as u64);
                svc.pending = Some(Pending {
                    due: Instant::now() + delay,
                    delay,
                    reason,
                    trigger,
                });
            }
        }
    }

    fn on_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .services
            .values()
            .filter(|s| s.pending.as_ref().is_some_and(|p| p.due <= now))
            .map(|s| s.name.clone())
            .collect();
        let snap = self.store.snapshot();
        let degraded = degraded(&snap);
        for name in due {
            let Some(p) = self.services.get_mut(&name).and_then(|s| s.pending.take()) else {
                continue;
            };
            if let Some(svc) = self.services.get_mut(&name) {
                svc.status.next_restart_ms = None;
                svc.status.next_delay_ms = None;
            }
            let state = snap.services.get(&name).map(|s| s.state);
            if p.trigger == Trigger::Unready && state == Some(ServiceState::Ready) {
                tracing::info!(service = %name, "ready again before its restart; restart cancelled");
                continue;
            }
            if p.trigger == Trigger::Unready && degraded.contains_key(&name) {
                // A dependency went down meanwhile: decided again by on_snapshot.
                if let Some(svc) = self.services.get_mut(&name) {
                    svc.acted_unready_since = None;
                }
                continue;
            }
            if self.running_ids(&name).is_empty() {
                tracing::info!(service = %name, "no running container any more; restart cancelled");
                continue;
            }
            self.execute(&name, p.trigger, p.reason, Some(p.delay));
        }
    }

    /// Restarts every container of `service` now (on another task).
    fn execute(
        &mut self,
        service: &str,
        trigger: Trigger,
        reason: String,
        backoff: Option<Duration>,
    ) {
        let ids: Vec<String> = match trigger {
            // A dependency restart also starts a dependent that is not running.
            Trigger::Dependency(_) => {
                let mut all: Vec<(u32, String)> = self
                    .containers
                    .iter()
                    .filter(|(_, c)| c.service == service)
                    .map(|(id, c)| (c.number, id.clone()))
                    .collect();
                all.sort();
                all.into_iter().map(|(_, id)| id).collect()
            }
            _ => self.running_ids(service),
        };
        if ids.is_empty() {
            return;
        }
        let names = self.container_names(service);
        let now = now_ms();
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        let (by, attempt) = match &trigger {
            Trigger::Dependency(_) => (RestartBy::Dependency, None),
            _ => {
                svc.budget.record(now, svc.settings.window);
                let used = svc.budget.used(&svc.settings, now);
                (RestartBy::Muster, Some(used))
            }
        };
        svc.status.budget_used = svc.budget.used(&svc.settings, now);
        svc.in_flight = Some(InFlight {
            reason: reason.clone(),
            by,
            attempt,
            backoff,
            began_ms: now,
            announced: false,
            containers: names,
        });
        let grace = svc.stop_grace;
        svc.status.restarting = true;
        // Published before the engine is asked, so that `up` (which follows
        // the same containers) reads the coming exit as a restart.
        let heal = svc.status.clone();
        self.store.update(service, |s| s.heal = heal);
        tracing::warn!(service = %service, by = by.as_str(), reason = %reason, attempt = ?attempt, "restarting the service's containers");
        let started = Instant::now();
        for id in &ids {
            if let Some(c) = self.containers.get_mut(id) {
                c.muster_restart = Some(started);
                c.stop_requested = false;
            }
        }
        let engine = self.engine.clone();
        let done = self.done_tx.clone();
        let service = service.to_string();
        tokio::spawn(async move {
            let result = restart_containers(&engine, &ids, grace).await;
            let _ = done.send(Done { service, result });
        });
    }

    fn on_done(&mut self, done: Done) {
        let Some(fl) = self.services.get_mut(&done.service).and_then(|s| {
            s.status.restarting = false;
            s.in_flight.take()
        }) else {
            return;
        };
        let service = done.service;
        let at = now_ms();
        match done.result {
            Ok(()) => {
                if !fl.announced {
                    self.announce_restart(&service);
                }
                let Some(svc) = self.services.get_mut(&service) else {
                    return;
                };
                svc.status.muster_restarts = svc.status.muster_restarts.saturating_add(1);
                svc.status.last_restart = Some(RestartNote {
                    at_ms: at,
                    by: fl.by.as_str().to_string(),
                    reason: fl.reason.clone(),
                    backoff_ms: fl.backoff.map(|d| d.as_millis() as u64),
                });
                svc.troubled = true;
                let hook = svc.settings.hook.clone().map(|command| hook::HookRun {
                    command,
                    timeout: svc.settings.hook_timeout,
                    project: self.project.clone(),
                    service: service.clone(),
                    containers: fl.containers.clone(),
                    container_ids: Vec::new(),
                    reason: fl.reason.clone(),
                    by: fl.by.as_str().to_string(),
                    restarts: svc.status.muster_restarts,
                    dir: Some(self.working_dir.clone()),
                });
                tracing::warn!(service = %service, by = fl.by.as_str(), reason = %fl.reason, restarts = svc.status.muster_restarts, "service restarted");
                let record = RestartRecord {
                    at_ms: at,
                    by: fl.by,
                    reason: fl.reason.clone(),
                    containers: fl.containers.clone(),
                };
                self.record(&service, record);
                if let Some(mut hook) = hook {
                    hook.container_ids = self.running_ids(&service);
                    hook::spawn(hook);
                }
                self.notify_restart(
                    &service,
                    &fl.reason,
                    Extra {
                        by: Some(fl.by),
                        attempt: fl.attempt,
                        backoff: fl.backoff,
                        error: None,
                    },
                );
                self.restart_dependents(&service, fl.began_ms);
            }
            Err(e) => {
                for c in self.containers.values_mut() {
                    if c.service == service {
                        c.muster_restart = None;
                    }
                }
                let text = format!("restart failed: {e}");
                tracing::error!(service = %service, error = %e, "the engine refused the restart");
                if let Some(svc) = self.services.get_mut(&service) {
                    svc.status.alert = Some(text.clone());
                    svc.troubled = true;
                }
                self.notify_restart(
                    &service,
                    &fl.reason,
                    Extra {
                        by: Some(fl.by),
                        attempt: fl.attempt,
                        backoff: fl.backoff,
                        error: Some(e),
                    },
                );
            }
        }
    }

    fn record(&mut self, service: &str, record: RestartRecord) {
        let Some(svc) = self.services.get(service) else {
            return;
        };
        let totals = RestartTotals {
            muster: svc.status.muster_restarts,
            external: svc.status.external_restarts,
        };
        let _ = self.history_tx.send(HistoryWrite::Record {
            service: service.to_string(),
            record,
            totals,
        });
    }

    /// After `service` was restarted: its `restart: true` dependents wait for
    /// their condition on it, then restart.
    fn restart_dependents(&mut self, service: &str, after_ms: u64) {
        let dependents = self
            .services
            .get(service)
            .map(|s| s.restart_dependents.clone())
            .unwrap_or_default();
        for (dependent, condition) in dependents {
            let has_containers = self.containers.values().any(|c| c.service == dependent);
            let Some(d) = self.services.get_mut(&dependent) else {
                continue;
            };
            if !has_containers {
                continue;
            }
            tracing::info!(service = %dependent, dependency = %service, "dependency was restarted; restarting this service once the dependency's condition holds (depends_on restart: true)");
            d.wait_dep = Some(WaitDep {
                dependency: service.to_string(),
                condition,
                after_ms,
            });
        }
    }

    /// Dependents whose dependency's condition holds again are restarted.
    fn check_waits(&mut self, snap: &super::state::StackSnapshot) {
        let ready: Vec<(String, String)> = self
            .services
            .values()
            .filter_map(|s| s.wait_dep.as_ref().map(|w| (s.name.clone(), w.clone())))
            .filter(|(_, w)| {
                let dep = snap.services.get(&w.dependency);
                let dep_state = dep.map(|s| s.state);
                // Reached again since the restart began (not a stale state from before it).
                let fresh = dep.is_some_and(|s| s.since_ms >= w.after_ms);
                let dep_busy = self
                    .services
                    .get(&w.dependency)
                    .is_some_and(|s| s.in_flight.is_some());
                if dep_busy {
                    return false;
                }
                match w.condition {
                    Condition::ServiceStarted => self
                        .containers
                        .values()
                        .any(|c| c.service == w.dependency && c.running),
                    Condition::ServiceHealthy => dep_state == Some(ServiceState::Ready) && fresh,
                    Condition::ServiceCompletedSuccessfully => {
                        dep_state == Some(ServiceState::Completed) && fresh
                    }
                }
            })
            .map(|(name, w)| (name, w.dependency))
            .collect();
        for (name, dependency) in ready {
            let Some(svc) = self.services.get_mut(&name) else {
                continue;
            };
            svc.wait_dep = None;
            if svc.in_flight.is_some() {
                continue;
            }
            svc.pending = None;
            svc.status.next_restart_ms = None;
            svc.status.next_delay_ms = None;
            self.execute(
                &name,
                Trigger::Dependency(dependency.clone()),
                format!("its dependency {dependency} was restarted (depends_on restart: true)"),
                None,
            );
        }
    }

    // ---- the store -------------------------------------------------------

    fn on_snapshot(&mut self) {
        let snap = self.store.snapshot();
        let degraded = degraded(&snap);
        // First pass: what changed; the actions that need `&mut self` after it.
        let mut recovered: Vec<(String, String)> = Vec::new();
        let mut restart: Vec<(String, String)> = Vec::new();
        for (name, svc) in self.services.iter_mut() {
            let Some(status) = snap.services.get(name) else {
                continue;
            };
            let state = status.state;
            let entered = svc.last_state != Some(state);
            svc.last_state = Some(state);
            if state != ServiceState::Unready {
                svc.status.restart_held = None;
            }
            if state == ServiceState::Ready {
                svc.gave_up = false;
                if entered && svc.troubled {
                    svc.troubled = false;
                    svc.status.alert = None;
                    let text = format!(
                        "ready again ({}); {} restarts so far",
                        status.reason,
                        svc.status.muster_restarts
                            + svc.status.engine_restarts
                            + svc.status.external_restarts
                    );
                    tracing::info!(service = %name, reason = %status.reason, "service recovered");
                    recovered.push((name.clone(), text));
                }
                continue;
            }
            if state == ServiceState::Unready
                && svc.settings.on_unready
                && svc.acted_unready_since != Some(status.since_ms)
            {
                if let Some(by) = degraded.get(name) {
                    // Unready because something it needs is down: restarting
                    // it would not help. Checked again when that changes.
                    let held = format!(
                        "not restarted while its dependencies are not ready: {}",
                        by.join(", ")
                    );
                    if svc.status.restart_held.as_ref() != Some(&held) {
                        tracing::info!(service = %name, held = %held, "unready, restart held back");
                        svc.status.restart_held = Some(held);
                    }
                    if svc
                        .pending
                        .as_ref()
                        .is_some_and(|p| p.trigger == Trigger::Unready)
                    {
                        svc.pending = None;
                        svc.status.next_restart_ms = None;
                        svc.status.next_delay_ms = None;
                    }
                    continue;
                }
                svc.status.restart_held = None;
                svc.acted_unready_since = Some(status.since_ms);
                restart.push((
                    name.clone(),
                    format!(
                        "unready past its failure threshold outside the start period: {}",
                        status.reason
                    ),
                ));
            }
        }
        for (name, text) in recovered {
            self.notify(&name, NotifyEvent::Recovered, &text, Extra::default());
        }
        for (name, reason) in restart {
            self.request_restart(&name, Trigger::Unready, reason);
        }
        self.check_waits(&snap);
        self.publish(&snap, degraded);
    }

    /// Writes heal status, degraded flags and (when following) container ids
    /// of the services whose values changed, in one snapshot swap.
    fn publish(
        &self,
        snap: &super::state::StackSnapshot,
        mut degraded: BTreeMap<String, Vec<String>>,
    ) {
        let mut changes: Vec<(String, Change)> = Vec::new();
        // Container ids per service, when the healer keeps them.
        let mut ids: HashMap<&str, Vec<(u32, &String)>> = HashMap::new();
        let keep_ids = self.following && self.synced;
        if keep_ids {
            for (id, c) in &self.containers {
                ids.entry(c.service.as_str())
                    .or_default()
                    .push((c.number, id));
            }
        }
        for (name, status) in &snap.services {
            let by = degraded.remove(name).unwrap_or_default();
            if status.degraded == by.is_empty() || status.degraded_by != by {
                changes.push((
                    name.clone(),
                    Box::new(move |s: &mut ServiceStatus| {
                        s.degraded = !by.is_empty();
                        s.degraded_by = by;
                    }),
                ));
            }
            let Some(svc) = self.services.get(name) else {
                continue;
            };
            if status.heal != svc.status {
                let heal = svc.status.clone();
                changes.push((name.clone(), Box::new(move |s| s.heal = heal)));
            }
            if keep_ids {
                let mut mine = ids.remove(name.as_str()).unwrap_or_default();
                mine.sort();
                let same = mine.len() == status.container_ids.len()
                    && mine
                        .iter()
                        .zip(&status.container_ids)
                        .all(|((_, a), b)| *a == b);
                if !same {
                    let list: Vec<String> = mine.into_iter().map(|(_, id)| id.clone()).collect();
                    changes.push((name.clone(), Box::new(move |s| s.container_ids = list)));
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        self.store.update_many(|services| {
            for (name, f) in changes {
                if let Some(s) = services.get_mut(&name) {
                    f(s);
                }
            }
        });
    }

    // ---- notifications -----------------------------------------------------

    fn notify_restart(&self, service: &str, reason: &str, extra: Extra) {
        self.notify(service, NotifyEvent::Restart, reason, extra);
    }

    fn notify(&self, service: &str, event: NotifyEvent, reason: &str, extra: Extra) {
        let Extra {
            by,
            attempt,
            backoff,
            error,
        } = extra;
        let Some(svc) = self.services.get(service) else {
            return;
        };
        let restarts =
            svc.status.muster_restarts + svc.status.engine_restarts + svc.status.external_restarts;
        let budget = (svc.settings.budget > 0).then(|| BudgetNote {
            used: svc.budget.used(&svc.settings, now_ms()),
            limit: svc.settings.budget,
            window_s: svc.settings.window.as_secs(),
        });
        let who = format!("{}/{service}", self.project);
        let text = match (event, by) {
            (NotifyEvent::Restart, Some(by)) => {
                let how = match (by, attempt) {
                    (RestartBy::Muster, Some(n)) => format!(
                        "restarted by muster (restart {n} of {} in {})",
                        svc.settings.budget,
                        fmt(svc.settings.window)
                    ),
                    (RestartBy::Muster, None) => "restarted by muster".to_string(),
                    (RestartBy::Dependency, _) => "restarted by muster".to_string(),
                    (RestartBy::Engine, _) => "restarted by the engine".to_string(),
                    (RestartBy::External, _) => "restarted outside muster".to_string(),
                };
                match &error {
                    Some(e) => format!("{who}: restart failed: {e} ({reason})"),
                    None => format!("{who} {how}: {reason}"),
                }
            }
            (NotifyEvent::Restart, None) => format!("{who} restarted: {reason}"),
            (NotifyEvent::Failed, _) => format!("{who} failed: {reason}"),
            (NotifyEvent::Recovered, _) => format!("{who} recovered: {reason}"),
        };
        self.notifier.notify(Notification {
            event,
            project: self.project.clone(),
            service: service.to_string(),
            reason: reason.to_string(),
            at_ms: now_ms(),
            containers: self.container_names(service),
            by,
            attempt,
            backoff_ms: backoff.map(|d| d.as_millis() as u64),
            restarts,
            budget,
            error,
            text,
            muster: env!("CARGO_PKG_VERSION").to_string(),
        });
    }
}

/// One write to a service's status, batched by `publish`.
type Change = Box<dyn FnOnce(&mut ServiceStatus) + Send>;

/// Optional parts of a notification.
#[derive(Debug, Default)]
struct Extra {
    by: Option<RestartBy>,
    attempt: Option<u32>,
    backoff: Option<Duration>,
    error: Option<String>,
}

/// For every service, the dependencies (followed transitively) that are not
/// ready: failed, unready, blocked or stopped, or starting again after they
/// had been ready.
pub fn degraded(snap: &super::state::StackSnapshot) -> BTreeMap<String, Vec<String>> {
    let troubled = |s: &ServiceStatus| match s.state {
        ServiceState::Unready
        | ServiceState::Failed
        | ServiceState::Blocked
        | ServiceState::Stopped => true,
        ServiceState::Starting | ServiceState::Pending => {
            s.transitions.iter().any(|t| t.to == ServiceState::Ready)
        }
        ServiceState::Ready | ServiceState::Completed => false,
    };
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let troubled: Vec<&ServiceStatus> = snap.services.values().filter(|s| troubled(s)).collect();
    if troubled.is_empty() {
        // The usual case, and it costs one pass.
        return out;
    }
    // From each troubled service up through its dependents.
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, status) in &snap.services {
        for dep in &status.depends_on {
            dependents
                .entry(dep.as_str())
                .or_default()
                .push(name.as_str());
        }
    }
    for t in troubled {
        let label = format!("{} ({})", t.name, t.state);
        let mut seen: HashSet<&str> = HashSet::from([t.name.as_str()]);
        let mut todo = vec![t.name.as_str()];
        while let Some(x) = todo.pop() {
            for d in dependents.get(x).into_iter().flatten() {
                if seen.insert(d) {
                    out.entry(d.to_string()).or_default().push(label.clone());
                    todo.push(d);
                }
            }
        }
    }
    out
}

/// Whether the engine restarts a container that just exited with `code`:
/// inspect says so (restarting, or already running again), else its restart
/// policy does (`always`, `unless-stopped`, `on-failure[:N]` under N restarts).
fn engine_restarts_it(
    policy: &str,
    code: i64,
    restarts_before: u32,
    state: Option<&ContainerState>,
) -> bool {
    if let Some(s) = state {
        if s.restarting || s.running || s.restart_count > restarts_before {
            return true;
        }
        // Inspect ran after the engine decided: it is not restarting it.
        if s.exit_code.is_some() {
            return false;
        }
    }
    match policy.split_once(':') {
        _ if policy == "always" || policy == "unless-stopped" => true,
        Some(("on-failure", max)) => {
            code != 0 && max.parse::<u32>().map_or(true, |m| restarts_before < m)
        }
        None if policy == "on-failure" => code != 0,
        _ => false,
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Restarts containers through the Engine API (stop with `stop_grace`, then start).
async fn restart_containers(
    engine: &Engine,
    ids: &[String],
    stop_grace: Option<Duration>,
) -> Result<(), String> {
    let options = RestartContainerOptions {
        t: stop_grace.map(|d| d.as_secs().min(i32::MAX as u64) as i32),
        signal: None,
    };
    let limit = stop_grace.unwrap_or(Duration::from_secs(10)) + Duration::from_secs(60);
    let calls = ids.iter().map(|id| {
        let options = options.clone();
        async move {
            tokio::time::timeout(limit, engine.docker().restart_container(id, Some(options)))
                .await
                .map_err(|_| format!("restart {id}: no answer within {}", fmt(limit)))?
                .map_err(|e| format!("restart {id}: {e}"))
        }
    });
    let errors: Vec<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::state::StackSnapshot;

    #[test]
    fn who_restarts_an_exited_container() {
        let state = |running, restarting, count| ContainerState {
            id: "x".into(),
            name: "p-a-1".into(),
            service: "a".into(),
            number: 1,
            running,
            restarting,
            restart_count: count,
            started_ns: Some(1),
            exit_code: (!running && !restarting).then_some(3),
            oom_killed: false,
            has_healthcheck: false,
            health: None,
        };
        // Inspect decides when it saw the engine's decision.
        assert!(engine_restarts_it("no", 3, 0, Some(&state(false, true, 0))));
        assert!(engine_restarts_it(
            "always",
            3,
            0,
            Some(&state(true, false, 1))
        ));
        assert!(!engine_restarts_it(
            "always",
            3,
            0,
            Some(&state(false, false, 0))
        ));
        // Without inspect, the policy.
        assert!(engine_restarts_it("always", 0, 9, None));
        assert!(engine_restarts_it("unless-stopped", 1, 0, None));
        assert!(engine_restarts_it("on-failure", 1, 0, None));
        assert!(!engine_restarts_it("on-failure", 0, 0, None));
        assert!(engine_restarts_it("on-failure:3", 1, 2, None));
        assert!(!engine_restarts_it("on-failure:3", 1, 3, None));
        assert!(!engine_restarts_it("no", 1, 0, None));
    }

    #[test]
    fn degraded_names_the_troubled_dependencies() {
        let store = StateStore::new("p");
        for (name, deps) in [
            ("redis", vec![]),
            ("api", vec!["redis"]),
            ("web", vec!["api"]),
            ("batch", vec![]),
        ] {
            let mut s = ServiceStatus::pending(name);
            s.depends_on = deps.into_iter().map(String::from).collect();
            store.insert(s);
        }
        for s in ["redis", "api", "web", "batch"] {
            store.transition(s, ServiceState::Ready, "ok");
        }
        assert!(degraded(&store.snapshot()).is_empty());
        store.transition("redis", ServiceState::Unready, "refused");
        let d = degraded(&store.snapshot());
        assert_eq!(d["api"], vec!["redis (unready)"]);
        assert_eq!(d["web"], vec!["redis (unready)"]);
        assert!(!d.contains_key("batch") && !d.contains_key("redis"));
        // Starting again after having been ready still degrades dependents.
        store.transition("redis", ServiceState::Starting, "restarted");
        assert_eq!(degraded(&store.snapshot())["api"], vec!["redis (starting)"]);
        // A first start does not.
        let snap = StackSnapshot::default();
        assert!(degraded(&snap).is_empty());
        let store = StateStore::new("q");
        let mut a = ServiceStatus::pending("a");
        a.depends_on = vec!["b".into()];
        store.insert(a);
        store.insert(ServiceStatus::pending("b"));
        store.transition("b", ServiceState::Starting, "container started");
        assert!(degraded(&store.snapshot()).is_empty());
    }
}
