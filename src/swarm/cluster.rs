//! The swarm muster talks to and what it reports while it works: the
//! manager check (an engine that is not a manager is refused, naming the node
//! and DOCKER_HOST), the nodes and which of them are down, the progress events
//! `up --swarm` and `rollout --swarm` send, and the one-line task summary of
//! their errors. Shared by `deploy.rs`, `watch.rs` and `rollout.rs`.

use std::collections::HashMap;

use serde::Serialize;

use crate::engine::Engine;

use super::readiness::TaskState;
use super::spec::Ignored;
use super::SwarmError;

/// The manager muster talks to.
#[derive(Debug, Clone, Serialize)]
pub struct Manager {
    /// DOCKER_HOST (or the default socket).
    pub host: String,
    /// The manager's hostname.
    pub node: String,
    /// node id -> hostname, for every node of the swarm.
    #[serde(skip)]
    pub nodes: HashMap<String, String>,
    /// How many nodes the swarm has.
    pub node_count: usize,
    /// Nodes that are not ready (down, disconnected): Swarm places no tasks
    /// there and reschedules theirs on the others.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<NodeDown>,
}

/// A node of the swarm that is not ready.
#[derive(Debug, Clone, Serialize)]
pub struct NodeDown {
    pub node: String,
    /// `down`, `disconnected`, `unknown`.
    pub state: String,
    /// Swarm's message (`heartbeat failure`), with the node's address.
    pub message: String,
}

impl std::fmt::Display for NodeDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} is {} ({}): Swarm places no tasks there and reschedules its tasks on the \
             other nodes; muster waits for and probes the rescheduled tasks",
            self.node, self.state, self.message
        )
    }
}

/// One step of the deploy, for the caller to show.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A compose key Swarm does not apply.
    Ignored(Ignored),
    /// A node of the swarm is not ready.
    NodeDown(NodeDown),
    /// An overlay network created (or found, `created: false`).
    Network { name: String, created: bool },
    /// A service waits for these dependencies before it is created.
    Waiting { service: String, on: Vec<String> },
    /// A service was created (or already existed, `created: false`; with
    /// another spec, so updated: `updated: true`).
    Created {
        service: String,
        name: String,
        level: usize,
        created: bool,
        updated: bool,
    },
    /// `rollout --swarm` of a service whose spec has no healthcheck: Swarm
    /// counts a new task as updated as soon as it runs, so one that runs but
    /// does not answer takes requests and displaces an old task.
    NoHealthcheck { service: String },
    /// A task's state or probe result changed.
    Task { service: String, state: TaskState },
    /// The service has its required number of ready tasks.
    Ready {
        service: String,
        ready: usize,
        required: usize,
    },
}

pub(super) fn api(context: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> SwarmError {
    let context = context.into();
    move |source| SwarmError::Api { context, source }
}

/// Checks that `engine` is a swarm manager and lists the swarm's nodes.
pub async fn manager(engine: &Engine) -> Result<Manager, SwarmError> {
    let docker = engine.docker();
    let info = docker
        .info()
        .await
        .map_err(api(format!("asking {} for its swarm state", engine.host())))?;
    let node = info.name.clone().unwrap_or_default();
    let swarm = info.swarm.unwrap_or_default();
    let state = swarm
        .local_node_state
        .map(|s| s.to_string())
        .unwrap_or_default();
    if state != "active" {
        return Err(SwarmError::NotInSwarm {
            host: engine.host().to_string(),
            node,
            state: if state.is_empty() {
                "inactive".into()
            } else {
                state
            },
        });
    }
    if swarm.control_available != Some(true) {
        let managers: Vec<String> = swarm
            .remote_managers
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.addr)
            .collect();
        return Err(SwarmError::NotManager {
            host: engine.host().to_string(),
            node,
            managers: if managers.is_empty() {
                String::new()
            } else {
                format!(
                    " (managers: {}; e.g. DOCKER_HOST=ssh://HOST or the manager's socket)",
                    managers.join(", ")
                )
            },
        });
    }
    let listed = docker
        .list_nodes(None)
        .await
        .map_err(api("listing the swarm's nodes"))?;
    let hostname = |n: &bollard::models::Node| {
        n.description
            .as_ref()
            .and_then(|d| d.hostname.clone())
            .or_else(|| n.id.clone())
            .unwrap_or_default()
    };
    let unavailable = listed
        .iter()
        .filter_map(|n| {
            let status = n.status.as_ref()?;
            let state = status.state.map(|s| s.to_string()).unwrap_or_default();
            (state != "ready").then(|| NodeDown {
                node: hostname(n),
                state,
                message: format!(
                    "{}, address {}",
                    status.message.clone().unwrap_or_default(),
                    status.addr.clone().unwrap_or_default()
                ),
            })
        })
        .collect();
    let nodes: HashMap<String, String> = listed
        .iter()
        .filter_map(|n| Some((n.id.clone()?, hostname(n))))
        .collect();
    Ok(Manager {
        host: engine.host().to_string(),
        node,
        node_count: nodes.len(),
        nodes,
        unavailable,
    })
}

/// `task on node: state (reason)` per task, for errors.
pub(super) fn summary(states: &[TaskState]) -> String {
    if states.is_empty() {
        return "no tasks yet (is a placement constraint unsatisfiable? `docker service ps` says)"
            .into();
    }
    states
        .iter()
        .map(|s| {
            let why = [s.task.reason.as_str(), s.probe.as_str()]
                .iter()
                .filter(|t| !t.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("; ");
            let id: String = s.task.task_id.chars().take(12).collect();
            if why.is_empty() {
                format!("task {id} on {}: {}", s.task.node, s.task.state)
            } else {
                format!("task {id} on {}: {} ({why})", s.task.node, s.task.state)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
