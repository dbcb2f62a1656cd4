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
    pub role: crate::probe::spec::ProbeRole,
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
}

/// The whole stack, as the health endpoint and `muster status` show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StackSnapshot {
    pub project: String,
    /// Unix milliseconds when the snapshot was taken.
    pub at_ms: u64,
    pub services: BTreeMap<String, ServiceStatus>,
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
}

/// A state change as streamed by `muster up --json` and `GET /events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateEvent {
    pub service: String,
    #[serde(flatten)]
    pub transition: Transition,
}
