//! Supervision on Swarm (`muster up --swarm --serve`): after the ordered
//! deploy, keep probing every task of every service, write each service's
//! state and its tasks (node, task id, state, reason, last probe) into the
//! state store the health endpoint reads, mark dependents degraded, and
//! when a running task stays unready past its grace and failure threshold,
//! ask Swarm to replace it — within the same restart budget and backoff as
//! single-host healing (`heal::policy`, the pure core).
//!
//! Why a force-update of the service (and not removing the task's container):
//! muster talks to the manager only, and the manager's API has no call that
//! replaces one task; removing the container would need every node's engine.
//! A force-update is Swarm's own replacement: it restarts the service's tasks
//! following `update_config` (parallelism, order, delay), so Swarm keeps the
//! placement, the restart policy and the capacity rules, and muster does not
//! fight it. Tasks that are not running (a node lost, a task rescheduling) are
//! Swarm's business: muster shows them and waits, it replaces nothing.
//!
//! This module is the one writer of the state of the services it follows:
//! it owns its store's [`Writer`] (there is no probe runner under `up
//! --swarm --serve`, and no other writer), and the health endpoint reads
//! the store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::compose::xmuster::{GraceSetting, RestartSettings};
use crate::compose::{Project, Service};
use crate::engine::Engine;
use crate::swarm::readiness::TaskState;
use crate::swarm::{self, DeployReport, Manager, Progress, SwarmError};

use super::heal::policy::{Budget, Verdict};
use super::heal::{RestartRecord, RestartTotals};
use super::state::{PauseNote, RestartNote, ServiceState, ServiceStatus, TaskStatus};
use super::{ProbeObservation, Writer};
use crate::history::HistoryStore;
use crate::notify::RestartBy;

/// How long a task that never became ready may fail its probes before it
/// counts as unready, when the service's grace is `auto` (no tuning on Swarm yet).
pub const AUTO_TASK_GRACE: Duration = Duration::from_secs(60);

/// How often the nodes' states are read from the manager.
const NODE_PERIOD: Duration = Duration::from_secs(2);

/// Registers the deployed services in `store` (all ready: the deploy waited
/// for them) and supervises them until `stop` completes. `history`: where
/// the replacements are recorded (`restarts:{service}`, as single-host
/// restarts, so the budget survives a muster restart) and where
/// `muster pause` keeps the paused services.
pub async fn supervise(
    engine: &Engine,
    project: &Project,
    report: &DeployReport,
    store: &Writer,
    history: Option<&HistoryStore>,
    signals: Option<&crate::signal::WatcherConfig>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut budgets: HashMap<String, Budget> = HashMap::new();
    for s in &report.services {
        let Some(service) = project.services.get(&s.service) else {
            continue;
        };
        let mut status = ServiceStatus::pending(&s.service);
        status.level = s.level;
        status.depends_on = service.depends_on.keys().cloned().collect();
        status.required = service.muster.as_ref().is_none_or(|m| m.required);
        status.image = service.image.clone();
        let settings = restart_settings(service);
        status.heal.supervised = true;
        status.heal.budget = settings.budget;
        status.heal.window_ms = settings.window.as_millis() as u64;
        if let Some(h) = history {
            let past = load_restarts(h, &s.service).await;
            status.heal.muster_restarts = past.totals.muster;
            status.heal.budget_used = past.budget.used(&settings, crate::clock::now_ms());
            status.heal.last_restart = past.last;
            status.restarts = past.totals.muster;
            budgets.insert(s.service.clone(), past.budget);
        }
        store.insert(status);
        store.transition(
            &s.service,
            ServiceState::Ready,
            format!(
                "deployed on swarm as {}: {} tasks ready",
                s.name,
                s.tasks.len()
            ),
        );
    }
    let (nodes_tx, nodes_rx) = watch::channel(node_states(&report.manager));
    let nodes = follow_nodes(engine, store, nodes_tx);
    let (paused_tx, paused_rx) = watch::channel(BTreeMap::new());
    if let Some(h) = history {
        tokio::spawn(super::heal::pause::poll(h.clone(), paused_tx));
    }
    let services = report.services.iter().filter_map(|s| {
        let service = project.services.get(&s.service)?;
        let follow = Follow {
            engine,
            manager: &report.manager,
            project,
            service,
            store,
            history,
            signals,
            nodes: nodes_rx.clone(),
            paused: paused_rx.clone(),
        };
        Some(follow.run(budgets.remove(&s.service).unwrap_or_default()))
    });
    let all = futures_util::future::join(nodes, futures_util::future::join_all(services));
    tokio::select! {
        _ = all => {}
        _ = stop => {}
    }
}

fn restart_settings(service: &Service) -> RestartSettings {
    service
        .muster
        .as_ref()
        .and_then(|m| m.restart.clone())
        .unwrap_or_default()
}

/// What the history store holds of a service's replacements.
#[derive(Default)]
struct PastRestarts {
    budget: Budget,
    totals: RestartTotals,
    last: Option<RestartNote>,
}

/// The service's restart records and totals (`restarts:{service}`,
/// `restart-totals:{service}`), as the single-host healer loads them.
async fn load_restarts(history: &HistoryStore, service: &str) -> PastRestarts {
    let records: Vec<RestartRecord> = match history
        .list(&format!("restarts:{service}"), super::heal::HISTORY_CAP)
        .await
    {
        Ok(values) => values
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        Err(e) => {
            tracing::warn!(%service, error = %e, "cannot read restart history; the budget starts empty");
            Vec::new()
        }
    };
    let totals = match history.get(&format!("restart-totals:{service}")).await {
        Ok(Some(v)) => serde_json::from_value(v).unwrap_or_default(),
        _ => RestartTotals::default(),
    };
    PastRestarts {
        budget: Budget::from_records(
            records
                .iter()
                .filter(|r| r.by == RestartBy::Muster)
                .map(|r| r.at_ms)
                .collect(),
        ),
        totals,
        last: records.first().map(|r| RestartNote {
            at_ms: r.at_ms,
            by: r.by.as_str().to_string(),
            reason: r.reason.clone(),
            backoff_ms: None,
        }),
    }
}

/// Records one replacement through Swarm like a restart by muster.
async fn record_restart(
    history: &HistoryStore,
    service: &str,
    record: &RestartRecord,
    muster: u32,
) {
    let value = serde_json::to_value(record).unwrap_or_default();
    if let Err(e) = history
        .push(
            &format!("restarts:{service}"),
            &value,
            super::heal::HISTORY_CAP,
        )
        .await
    {
        tracing::warn!(%service, error = %e, "cannot record the replacement in the history store");
    }
    let totals = RestartTotals {
        muster,
        external: 0,
    };
    let value = serde_json::to_value(&totals).unwrap_or_default();
    if let Err(e) = history
        .set(&format!("restart-totals:{service}"), &value)
        .await
    {
        tracing::warn!(%service, error = %e, "cannot record restart totals in the history store");
    }
}

/// hostname -> `ready`, or the state of a node that is not.
fn node_states(m: &Manager) -> HashMap<String, String> {
    let mut states: HashMap<String, String> = m
        .nodes
        .values()
        .map(|h| (h.clone(), "ready".to_string()))
        .collect();
    for down in &m.unavailable {
        states.insert(down.node.clone(), down.state.clone());
    }
    states
}

/// Reads the nodes' states (hostname -> `ready`/`down`/…) every few seconds.
async fn follow_nodes(engine: &Engine, store: &Writer, tx: watch::Sender<HashMap<String, String>>) {
    loop {
        match swarm::manager(engine).await {
            Ok(m) => {
                let states = node_states(&m);
                tx.send_if_modified(|old| {
                    let changed = *old != states;
                    if changed {
                        tracing::info!(nodes = ?states, "swarm nodes");
                        *old = states;
                    }
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the swarm's nodes"),
        }
        store.beat();
        tokio::time::sleep(NODE_PERIOD).await;
    }
}

/// What one poll of a service's tasks says muster should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Enough tasks are ready.
    Ready { ready: usize, required: usize },
    /// Not enough; `replace` names the running tasks that failed past their
    /// threshold (empty: wait for Swarm).
    Unready {
        ready: usize,
        required: usize,
        replace: Vec<String>,
    },
}

/// Per-task failure counts, kept across polls. Pure: times are passed in.
#[derive(Debug, Default)]
pub struct TaskJudge {
    /// task id -> (first seen running, ever ready, consecutive unready polls).
    tasks: HashMap<String, (Instant, bool, u32)>,
    /// Tasks a force-update already asked Swarm to replace.
    replaced: HashSet<String>,
}

impl TaskJudge {
    /// One poll: counts a running task's unready polls once it has been ready
    /// or has run longer than `grace`; a task with `threshold` of them in a
    /// row is to be replaced (unless already asked for).
    pub fn judge(
        &mut self,
        states: &[TaskState],
        required: usize,
        grace: Duration,
        threshold: u32,
        now: Instant,
    ) -> Judgement {
        self.tasks
            .retain(|id, _| states.iter().any(|s| &s.task.task_id == id));
        let mut replace = Vec::new();
        for s in states.iter().filter(|s| s.task.is_running()) {
            let entry = self
                .tasks
                .entry(s.task.task_id.clone())
                .or_insert((now, false, 0));
            if s.ready {
                *entry = (entry.0, true, 0);
                continue;
            }
            if entry.1 || now.duration_since(entry.0) >= grace {
                entry.2 += 1;
            }
            if entry.2 >= threshold.max(1) && !self.replaced.contains(&s.task.task_id) {
                replace.push(s.task.task_id.clone());
            }
        }
        let ready = states.iter().filter(|s| s.ready).count();
        if ready >= required {
            Judgement::Ready { ready, required }
        } else {
            Judgement::Unready {
                ready,
                required,
                replace,
            }
        }
    }

    /// Swarm was asked to replace every task it runs now.
    pub fn replaced_all(&mut self, states: &[TaskState]) {
        self.replaced
            .extend(states.iter().map(|s| s.task.task_id.clone()));
    }
}

fn task_status(s: &TaskState, nodes: &HashMap<String, String>) -> TaskStatus {
    TaskStatus {
        task_id: s.task.task_id.clone(),
        node: s.task.node.clone(),
        node_state: nodes
            .get(&s.task.node)
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        state: s.task.state.clone(),
        desired: s.task.desired.clone(),
        reason: s.task.reason.clone(),
        address: s.task.address.clone(),
        ready: s.ready,
        probe: s.probe.clone(),
    }
}

/// `task ID on NODE (node down): STATE (reason; probe)` for the not-ready tasks.
fn unready_text(tasks: &[TaskStatus]) -> String {
    tasks
        .iter()
        .filter(|t| !t.ready && t.desired == "running")
        .map(|t| {
            let id: String = t.task_id.chars().take(12).collect();
            let node = match t.node_state.as_str() {
                "ready" => t.node.clone(),
                other => format!("{} (node {other})", t.node),
            };
            let why: Vec<&str> = [t.reason.as_str(), t.probe.as_str()]
                .into_iter()
                .filter(|w| !w.is_empty())
                .collect();
            match why.is_empty() {
                true => format!("task {id} on {node}: {}", t.state),
                false => format!("task {id} on {node}: {} ({})", t.state, why.join("; ")),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Asks Swarm to replace the service's tasks (a force-update at the
/// service's current version). The spec is read and sent back as the
/// Engine's JSON (`swarm::raw`), so nothing but `ForceUpdate` changes.
async fn force_update(engine: &Engine, swarm_name: &str) -> Result<(), SwarmError> {
    let api = engine.api_version();
    let found = swarm::raw::inspect_service(engine.host(), &api, swarm_name)
        .await?
        .ok_or_else(|| SwarmError::Raw {
            context: format!("inspecting service {swarm_name}"),
            detail: "no such service (removed meanwhile?)".into(),
        })?;
    let mut spec = found.spec.clone();
    let force = swarm::raw::member(&mut spec, &["TaskTemplate", "ForceUpdate"]);
    *force = (force.as_u64().unwrap_or(0) + 1).into();
    swarm::raw::update_service(engine.host(), &api, &found, &spec, false).await
}

/// Follows one service for ever: probes its tasks, writes its state, heals.
/// What following one service needs.
struct Follow<'a> {
    engine: &'a Engine,
    manager: &'a Manager,
    project: &'a Project,
    service: &'a Service,
    store: &'a Writer,
    history: Option<&'a HistoryStore>,
    /// The signal Redis, for `agent` probes.
    signals: Option<&'a crate::signal::WatcherConfig>,
    nodes: watch::Receiver<HashMap<String, String>>,
    /// The paused services (`muster pause`), read from the history store.
    paused: watch::Receiver<BTreeMap<String, PauseNote>>,
}

impl Follow<'_> {
    /// Follows the service for ever: probes its tasks, writes its state,
    /// heals (within `budget`, which carries the recorded replacements).
    async fn run(self, mut budget: Budget) {
        let Follow {
            engine,
            manager,
            project,
            service,
            store,
            history,
            signals,
            nodes,
            paused,
        } = self;
        let name = service.name.clone();
        let swarm_name = swarm::spec::scoped(&project.name, &name);
        let probes = service
            .muster
            .as_ref()
            .map(|m| m.probes.as_slice())
            .unwrap_or_default();
        // The deploy refused services whose probes Swarm cannot run.
        let gating = swarm::readiness::gating_probes(&name, probes).unwrap_or_default();
        let threshold = gating
            .iter()
            .map(|p| p.timing.failure_threshold)
            .max()
            .unwrap_or(1);
        let grace = match service.muster.as_ref().map(|m| &m.grace) {
            Some(GraceSetting::Fixed(d)) => *d,
            Some(GraceSetting::Off) => Duration::ZERO,
            _ => AUTO_TASK_GRACE,
        };
        let settings = restart_settings(service);
        let log = |p: Progress| {
            if let Progress::Task { service, state } = p {
                tracing::info!(%service, task = %state.task.task_id, node = %state.task.node,
                state = %state.task.state, ready = state.ready, probe = %state.probe, "task");
            }
        };
        let mut watch = swarm::watch::TaskWatch::new(
            engine,
            manager,
            project,
            service,
            &swarm_name,
            gating,
            &log,
        )
        .with_signals(signals.cloned());
        let period = watch.period();
        let mut judge = TaskJudge::default();
        let mut next_replace: Option<Instant> = None;
        loop {
            let states = match watch.poll(|_| true).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(service = %name, error = %e, "cannot read the tasks");
                    tokio::time::sleep(period).await;
                    continue;
                }
            };
            // Every probe run goes to /metrics (`muster_probe_duration_seconds`).
            let runs = watch.take_runs();
            if store.probe_runs_followed() {
                for (kind, outcome) in runs {
                    store.observe_probe(ProbeObservation {
                        service: name.clone(),
                        kind: kind.to_string(),
                        outcome,
                    });
                }
            }
            let node_states = nodes.borrow().clone();
            // A paused service is shown as it is, and nothing is replaced.
            let pause = paused.borrow().get(&name).cloned();
            if store.snapshot().services.get(&name).map(|s| &s.heal.paused) != Some(&pause) {
                match &pause {
                    Some(note) => {
                        tracing::info!(service = %name, by = %note.by, "paused: no replacements or alerts until resumed")
                    }
                    None => tracing::info!(service = %name, "resumed: supervised again"),
                }
                let note = pause.clone();
                store.update(&name, |s| s.heal.paused = note);
            }
            let tasks: Vec<TaskStatus> = states
                .iter()
                .map(|s| task_status(s, &node_states))
                .collect();
            let required = watch.required(&states);
            let now = Instant::now();
            let mut verdict = judge.judge(&states, required, grace, threshold, now);
            // A task on a node that is not ready is Swarm's to reschedule.
            if let Judgement::Unready { replace, .. } = &mut verdict {
                replace.retain(|id| {
                    tasks
                        .iter()
                        .any(|t| &t.task_id == id && t.node_state == "ready")
                });
            }
            let current = store.snapshot().services.get(&name).map(|s| s.state);
            let text = unready_text(&tasks);
            store.update(&name, |s| s.tasks = tasks);
            match verdict {
                Judgement::Ready { ready, required } => {
                    next_replace = None;
                    store.update(&name, |s| {
                        s.heal.alert = None;
                        s.heal.next_restart_ms = None;
                        s.heal.next_delay_ms = None;
                    });
                    store.transition(
                        &name,
                        ServiceState::Ready,
                        format!("{ready}/{required} tasks ready"),
                    );
                }
                Judgement::Unready {
                    ready,
                    required,
                    replace,
                } => {
                    let reason = format!("{ready}/{required} tasks ready; {text}");
                    if current != Some(ServiceState::Failed) {
                        store.transition(&name, ServiceState::Unready, reason.clone());
                    }
                    if replace.is_empty() || !settings.on_unready || pause.is_some() {
                        if next_replace.take().is_some() {
                            store.update(&name, |s| {
                                s.heal.next_restart_ms = None;
                                s.heal.next_delay_ms = None;
                            });
                        }
                    } else if current != Some(ServiceState::Failed) {
                        let now_ms = crate::clock::now_ms();
                        match (budget.check(&settings, now_ms), next_replace) {
                            (Verdict::Restart { delay, .. }, None) => {
                                next_replace = Some(now + delay);
                                store.update(&name, |s| {
                                    s.heal.next_restart_ms =
                                        Some(now_ms + delay.as_millis() as u64);
                                    s.heal.next_delay_ms = Some(delay.as_millis() as u64);
                                });
                            }
                            (Verdict::Restart { delay, attempt }, Some(at)) if now >= at => {
                                next_replace = None;
                                replace_tasks(
                                    (engine, store, history),
                                    &name,
                                    &swarm_name,
                                    &replace,
                                    (delay, attempt),
                                )
                                .await;
                                budget.record(now_ms, settings.window);
                                judge.replaced_all(&states);
                                let used = budget.used(&settings, now_ms);
                                store.update(&name, |s| s.heal.budget_used = used);
                            }
                            (Verdict::Exhausted { used }, _) => {
                                next_replace = None;
                                let alert = format!(
                                "restart budget exhausted: Swarm was asked to replace its tasks \
                                 {used} times in {}; muster stops asking ({reason})",
                                crate::duration::format(settings.window)
                            );
                                store.update(&name, |s| {
                                    s.heal.alert = Some(alert.clone());
                                    s.heal.next_restart_ms = None;
                                    s.heal.next_delay_ms = None;
                                });
                                store.transition(&name, ServiceState::Failed, alert);
                            }
                            _ => {}
                        }
                    }
                }
            }
            mark_degraded(store);
            store.beat();
            tokio::time::sleep(period).await;
        }
    }
}

/// One replacement through Swarm, recorded like a restart by muster.
async fn replace_tasks(
    (engine, store, history): (&Engine, &Writer, Option<&HistoryStore>),
    name: &str,
    swarm_name: &str,
    tasks: &[String],
    (delay, attempt): (Duration, u32),
) {
    let short: Vec<String> = tasks.iter().map(|t| t.chars().take(12).collect()).collect();
    let reason = format!(
        "task(s) {} unready past the failure threshold: Swarm asked to replace them \
         (force-update, attempt {attempt})",
        short.join(", ")
    );
    match force_update(engine, swarm_name).await {
        Ok(()) => {
            tracing::warn!(service = %name, %reason, "replacing tasks");
            if let Some(h) = history {
                let record = RestartRecord {
                    at_ms: crate::clock::now_ms(),
                    by: RestartBy::Muster,
                    reason: reason.clone(),
                    containers: tasks.to_vec(),
                };
                let done = store
                    .snapshot()
                    .services
                    .get(name)
                    .map_or(0, |s| s.heal.muster_restarts);
                record_restart(h, name, &record, done + 1).await;
            }
            store.update(name, |s| {
                s.restarts += 1;
                s.heal.muster_restarts += 1;
                s.heal.next_restart_ms = None;
                s.heal.next_delay_ms = None;
                s.heal.last_restart = Some(RestartNote {
                    at_ms: crate::clock::now_ms(),
                    by: "muster".into(),
                    reason: reason.clone(),
                    backoff_ms: Some(delay.as_millis() as u64),
                });
            });
        }
        Err(e) => {
            let alert = format!("Swarm refused to replace the tasks: {e}");
            tracing::error!(service = %name, error = %e, "force-update refused");
            store.update(name, |s| s.heal.alert = Some(alert));
        }
    }
}

/// Marks every service whose dependencies are not ready as degraded.
fn mark_degraded(store: &Writer) {
    let snap = store.snapshot();
    let degraded: BTreeMap<String, Vec<String>> = super::heal::degraded(&snap);
    let changed = snap.services.values().any(|s| {
        let by = degraded.get(&s.name);
        s.degraded != by.is_some() || by.is_some_and(|b| *b != s.degraded_by)
    });
    if !changed {
        return;
    }
    store.update_many(|services| {
        for (name, s) in services.iter_mut() {
            let by = degraded.get(name).cloned().unwrap_or_default();
            s.degraded = !by.is_empty();
            s.degraded_by = by;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::tasks::TaskView;

    fn state(id: &str, running: bool, ready: bool) -> TaskState {
        TaskState {
            task: TaskView {
                task_id: id.into(),
                slot: None,
                node: "n1".into(),
                node_id: "n1".into(),
                state: if running { "running" } else { "preparing" }.into(),
                desired: "running".into(),
                reason: String::new(),
                address: Some("10.0.0.2".into()),
                image: "x".into(),
            },
            ready,
            probe: String::new(),
        }
    }

    #[test]
    fn a_running_task_is_replaced_after_its_threshold_once_and_missing_tasks_are_waited_for() {
        let mut j = TaskJudge::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        // Ready first, then failing: counts at once (it was ready).
        assert_eq!(
            j.judge(&[state("a", true, true)], 1, grace, 2, t0),
            Judgement::Ready {
                ready: 1,
                required: 1
            }
        );
        let bad = [state("a", true, false), state("b", false, false)];
        let Judgement::Unready { replace, .. } = j.judge(&bad, 1, grace, 2, t0) else {
            panic!()
        };
        assert!(replace.is_empty(), "one failure is under the threshold");
        let Judgement::Unready { replace, .. } = j.judge(&bad, 1, grace, 2, t0) else {
            panic!()
        };
        assert_eq!(replace, ["a"], "b is not running: Swarm's business");
        j.replaced_all(&bad);
        let Judgement::Unready { replace, .. } = j.judge(&bad, 1, grace, 2, t0) else {
            panic!()
        };
        assert!(replace.is_empty(), "asked for once");
        // A new task never ready: its failures count only after the grace.
        let new = [state("c", true, false)];
        for _ in 0..3 {
            let Judgement::Unready { replace, .. } = j.judge(&new, 1, grace, 2, t0) else {
                panic!()
            };
            assert!(replace.is_empty());
        }
        let later = t0 + grace;
        j.judge(&new, 1, grace, 2, later);
        let Judgement::Unready { replace, .. } = j.judge(&new, 1, grace, 2, later) else {
            panic!()
        };
        assert_eq!(replace, ["c"]);
    }
}
