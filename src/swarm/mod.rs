//! `muster up --swarm`: the same compose stack on a Docker Swarm, created in
//! dependency order and gated on muster's readiness probes.
//!
//! Why: `docker stack deploy` takes a compose file but ignores `depends_on`
//! and knows only a container's own healthcheck, so the problems muster solves
//! on one host come back on a cluster. This module does not schedule anything
//! itself: Swarm places and restarts tasks. muster converts the model to the
//! service specs `docker stack deploy` would make (`spec.rs`), creates each
//! service only when its dependencies' conditions hold (`deploy.rs`), and
//! decides `service_healthy` by probing every task at its overlay address
//! (`tasks.rs`, `readiness.rs`, the probe kinds of `probe/` unchanged).
//!
//! Layer: above `compose`, `engine` and `probe`, below the CLI (see the
//! README's Layers table).

mod cluster;
pub mod deploy;
pub mod objects;
pub mod raw;
pub mod readiness;
pub mod rollout;
pub mod spec;
pub mod tasks;
pub mod update;
pub(crate) mod watch;

pub use cluster::{manager, Manager, NodeDown, Progress};
pub use deploy::{deploy, DeployReport, ServiceReport, SwarmOptions};

use std::time::Duration;

/// Everything `up --swarm` can fail with; each names what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error(
        "the engine at {host} (node {node}) is not part of a swarm (state: {state}); \
         point DOCKER_HOST at a swarm manager, or make this one a manager with `docker swarm init`"
    )]
    NotInSwarm {
        host: String,
        node: String,
        state: String,
    },
    #[error(
        "the engine at {host} (node {node}) is a swarm worker, not a manager: services are \
         created on managers only; point DOCKER_HOST at a manager{managers}"
    )]
    NotManager {
        host: String,
        node: String,
        /// ` (managers: 10.0.0.1:2377, …)`, or empty when the node does not know them.
        managers: String,
    },
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("{context}: {source}")]
    Api {
        context: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// A plain Engine API call (`raw.rs`) that failed.
    #[error("{context}: {detail}")]
    Raw { context: String, detail: String },
    #[error(transparent)]
    Graph(#[from] crate::compose::graph::GraphError),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Probe(#[from] readiness::Unsupported),
    #[error(transparent)]
    Translate(#[from] crate::engine::translate::TranslateError),
    #[error(transparent)]
    Tasks(#[from] tasks::TaskListError),
    #[error(
        "network {name} exists but is not a swarm overlay network (driver {driver}, scope \
         {scope}): remove it or give the stack another name (-p)"
    )]
    NetworkConflict {
        name: String,
        driver: String,
        scope: String,
    },
    #[error(
        "service {service}: image {image} is missing on node(s) {nodes} ({reason}); a node \
         cannot pull it: load it there (`docker save {image} | docker -H NODE load`) or push \
         it to a registry every node reaches"
    )]
    ImageMissing {
        service: String,
        image: String,
        nodes: String,
        reason: String,
    },
    #[error("service {service}: not ready after {after:?}: {tasks}")]
    Timeout {
        service: String,
        after: Duration,
        /// One `task on node: state (reason)` per task.
        tasks: String,
    },
    #[error(
        "service {}: image {} was not ready within {:?} ({}); muster asked Swarm to roll \
         back to {}: {}",
        .0.service, .0.image, .0.after, .0.failure, .0.previous, .0.restored
    )]
    RolledBack(Box<RolledBack>),
    #[error(
        "service {service} is not deployed on the swarm (no service {name}): deploy it with \
         `muster up --swarm` first"
    )]
    NotDeployed { service: String, name: String },
    #[error(transparent)]
    Unknown(#[from] crate::compose::UnknownService),
    #[error(
        "service {service}: Swarm's update of the changed spec ended {state} ({message}); \
         `docker service ps {service}` shows the tasks"
    )]
    UpdateFailed {
        service: String,
        state: String,
        message: String,
    },
    #[error("service {service} was not created: its dependency {dependency} failed")]
    DependencyFailed { service: String, dependency: String },
}

/// A rollout that Swarm rolled back (boxed in [`SwarmError`]: it is large).
#[derive(Debug)]
pub struct RolledBack {
    pub service: String,
    pub image: String,
    pub after: Duration,
    /// The new tasks' summary when muster gave up.
    pub failure: String,
    pub previous: String,
    /// How the old image's tasks are after the rollback.
    pub restored: String,
}
