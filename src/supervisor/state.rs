//! Service states and the snapshot other modules read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::probe::ProbeOutcome;

/// `pending -> starting -> (grace) -> ready <-> unready -> failed`, plus
/// `stopped`, `completed` (one-shot services) and `blocked` (a dependency failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Pending,
    Starting,
    Ready,
    Unready,
    Failed,
    Stopped,
    Completed,
    Blocked,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Pending => "pending",
            ServiceState::Starting => "starting",
            ServiceState::Ready => "ready",
            ServiceState::Unready => "unready",
            ServiceState::Failed => "failed",
            ServiceState::Stopped => "stopped",
            ServiceState::Completed => "completed",
            ServiceState::Blocked => "blocked",
        }
    }

    /// Counts as "up" for /readyz and `muster status`.
    pub fn is_ready(self) -> bool {
        matches!(self, ServiceState::Ready | ServiceState::Completed)
    }
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The last result of one probe of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub kind: String,
    pub target: String,
    pub role: crate::compose::xmuster::ProbeRole,
    pub last: Option<ProbeOutcome>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
}

/// One state change, kept in the service's history and sent on the event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: ServiceState,
    pub to: ServiceState,
    /// Unix milliseconds.
    pub at_ms: u64,
    pub reason: String,
    /// Why, when followers must tell it apart from the usual meaning of the
    /// move (absent for most transitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

/// What made a transition happen, where the states alone do not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// `ready` -> `starting` because the agent said it is starting again (a
    /// model reload): no container started, so the grace recorder does not
    /// take it for a start-up.
    AgentRestarting,
    /// `starting` because a supervisor took over containers that were
    /// already running (`serve`, or a muster started again after it was
    /// killed): no container started, so no start-up to record.
    Adopted,
}

/// What the supervisor knows about one service, as of the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub state: ServiceState,
    /// Unix milliseconds of the last state change.
    pub since_ms: u64,
    pub reason: String,
    /// Required services hold /readyz at 503 while not ready.
    pub required: bool,
    /// A dependency of this service is not ready.
    pub degraded: bool,
    pub image: Option<String>,
    pub container_ids: Vec<String>,
    /// Effective grace (start) period in milliseconds.
    pub grace_ms: u64,
    pub restarts: u32,
    /// Progress text pushed by an agent (`loading model 40%`).
    pub progress: Option<String>,
    pub probes: Vec<ProbeReport>,
    /// Dependency level from the graph (0 = no dependencies).
    pub level: usize,
    pub depends_on: Vec<String>,
    pub transitions: Vec<Transition>,
    /// Why the grace period is what it is (`image 14.2 GB → 238 s`, …), when muster tuned it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grace_reasons: Vec<String>,
    /// With `degraded`: the dependencies (direct or further down) that are
    /// not ready, as `name (state)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded_by: Vec<String>,
    /// Restarts, exits and alerts (see [`crate::supervisor::heal`]).
    #[serde(default)]
    pub heal: HealStatus,
    /// While the service's image is pulled (state `pending`, reason
    /// `pulling IMAGE`): the pull's numbers; cleared when the pull ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<crate::engine::PullProgress>,
    /// Its containers one by one, as the healer follows them (empty until
    /// it does): which replica runs, which one is down and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
    /// On Swarm (`up --swarm --serve`): the service's tasks one by one, with
    /// their node; empty on one host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskStatus>,
}

/// One Swarm task of a service, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: String,
    /// The node's hostname.
    pub node: String,
    /// The node's own state as the manager sees it (`ready`, `down`, …).
    pub node_state: String,
    /// Swarm's task state (`running`, `preparing`, `rejected`, …).
    pub state: String,
    /// The state Swarm wants (`running`, `shutdown`).
    pub desired: String,
    /// Swarm's message or error for the task.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Its address on the probed overlay network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// muster's probes pass on this task.
    pub ready: bool,
    /// The last probe result.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub probe: String,
}

/// One container of a service, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The container's name (`project-web-2`).
    pub name: String,
    pub id: String,
    /// Compose's container number.
    pub number: u32,
    pub state: ReplicaState,
    /// Unix ms of the last change of `state` muster saw.
    pub since_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// While `exited`: its exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// While down: what happens next (`the engine restarts it`, `muster
    /// starts it again in 1s`, `restart policy `no` does not restart it`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The engine's restart count of the container (its restart policy and
    /// muster's restarts).
    #[serde(default)]
    pub restarts: u32,
    /// OOM kills seen while muster followed it (the engine's `oom` events).
    #[serde(default)]
    pub oom_kills: u32,
}

/// What one container is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    /// Created, never started.
    Created,
    Running,
    /// Died (exited, killed, out of memory) without a stop being asked for.
    Exited,
    /// Stopped on purpose (`docker stop`, a rollout replacing it).
    Stopped,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Created => "created",
            ReplicaState::Running => "running",
            ReplicaState::Exited => "exited",
            ReplicaState::Stopped => "stopped",
        }
    }
}

/// What the healing side of the supervisor knows about a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealStatus {
    /// Restarts muster made (durable across muster restarts when the history store is).
    pub muster_restarts: u32,
    /// Restarts the engine made by the containers' restart policy (Docker's RestartCount).
    pub engine_restarts: u32,
    /// Restarts by someone else (`docker restart`).
    pub external_restarts: u32,
    /// Restarts muster made within the budget window.
    pub budget_used: u32,
    /// The restart budget (restarts per window; 0 = muster does not restart).
    pub budget: u32,
    pub window_ms: u64,
    /// The last restart seen, of any kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<RestartNote>,
    /// A healer follows this service: it judges exits and restarts.
    #[serde(default)]
    pub supervised: bool,
    /// muster is restarting the service's containers right now (an exit is expected).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarting: bool,
    /// A restart muster has scheduled (backoff), unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_restart_ms: Option<u64>,
    /// The backoff chosen for that restart, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_delay_ms: Option<u64>,
    /// Why an unready service is not restarted now: a dependency of it is
    /// not ready either, so a restart would not help (re-checked when that changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_held: Option<String>,
    /// The last time a container exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ExitNote>,
    /// Something a human should look at (restart budget exhausted, exited and
    /// not restarted, a restart the engine refused). Cleared on recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// Maintenance: `muster pause SERVICE` turned healing and alerts off for
    /// this service until `muster resume SERVICE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<PauseNote>,
}

/// A service paused for maintenance (stored in the history store, so it
/// survives a muster restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseNote {
    /// Unix ms when it was paused.
    pub since_ms: u64,
    /// `user@host` of whoever paused it.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartNote {
    pub at_ms: u64,
    /// `muster`, `dependency`, `engine` or `external`.
    pub by: String,
    pub reason: String,
    /// For a restart by muster: the backoff it waited, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

/// One exit of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitNote {
    pub at_ms: u64,
    pub container: String,
    pub code: i64,
    /// The engine's restart policy restarts the container.
    pub engine_restarts_it: bool,
    pub oom_killed: bool,
}

/// muster's link to the engine's event stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineLink {
    pub connected: bool,
    /// Times the event stream was re-established after it dropped.
    pub reconnects: u32,
    /// Unix ms of the last connect or drop.
    pub since_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The whole stack, as the health endpoint and `muster status` show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StackSnapshot {
    pub project: String,
    /// Unix milliseconds when the snapshot was taken.
    pub at_ms: u64,
    pub services: BTreeMap<String, ServiceStatus>,
    /// muster's link to the engine's event stream, while muster heals (it
    /// cannot see exits or restart anything while disconnected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineLink>,
    /// Every connection muster keeps, by name (`engine`, `redis` and `nats`
    /// of the agent watcher, `history`, `webhook`), as their owners report
    /// them (`crate::link`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, crate::link::LinkStatus>,
}

impl StackSnapshot {
    /// Every required service is ready.
    pub fn all_required_ready(&self) -> bool {
        self.services
            .values()
            .filter(|s| s.required)
            .all(|s| s.state.is_ready())
    }

    pub fn count_in(&self, state: ServiceState) -> usize {
        self.services.values().filter(|s| s.state == state).count()
    }

    /// `service: alert` for every service with an alert.
    pub fn alerts(&self) -> Vec<String> {
        self.services
            .values()
            .filter_map(|s| s.heal.alert.as_ref().map(|a| format!("{}: {a}", s.name)))
            .collect()
    }
}

/// A pull's numbers as `GET /events` streams them (`event: pull`): at most
/// one a second per image, and a last one with `done` when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullPulse {
    /// The services that wait for this image.
    pub services: Vec<String>,
    /// The pull ended (pulled or failed); these are its last numbers.
    pub done: bool,
    #[serde(flatten)]
    pub progress: crate::engine::PullProgress,
}

/// A state change as streamed by `muster up --json` and `GET /events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateEvent {
    pub service: String,
    #[serde(flatten)]
    pub transition: Transition,
}
