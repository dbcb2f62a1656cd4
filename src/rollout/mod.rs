//! `muster rollout`, `muster rollback`, `muster history`, `muster rollout status`:
//! safe image (and environment) changes for compose services.
//!
//! - [`options`]: flags over `deploy.update_config` / `rollback_config` over
//!   `x-muster-rollout` over defaults, and the guard rails;
//! - [`revisions`]: revisions, the in-progress record and the lock, in the
//!   [`HistoryStore`] (Redis under the namespace, or the local state file);
//! - [`executor`]: the batch executor, which converges a service's containers
//!   on a revision from whatever state they are in;
//! - [`readiness`]: readiness of one container;
//! - [`containers`]: the engine moves (join / leave the service's DNS name);
//! - [`progress`]: one event per step, for people and for `--json`;
//! - [`recovery`]: recovery of an interrupted rollout, `rollout status`, and
//!   what `muster up` must know so it does not undo a rollout ([`Rollouts::prepare_up`]);
//! - `forward.rs` (one rollout under its lock), `rollback.rs`, `choose.rs`
//!   (which revision is active, which one a revert goes to);
//! - this module: the commands' entry points, their request and result types
//!   and errors.
//!
//! docs/readme/rollout.md describes the behaviour for operators.

mod choose;
pub mod containers;
pub mod executor;
mod forward;
mod joined;
pub mod options;
mod prestop;
pub mod progress;
mod pull;
pub mod readiness;
pub mod recovery;
pub mod revisions;
mod rollback;

use crate::clock::now_ms;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{watch, Mutex};

use crate::compose::{Project, Service};
use crate::engine::labels::config_hash;
use crate::engine::translate::TranslateError;
use crate::engine::{Engine, EngineError};
use crate::history::{HistoryError, HistoryStore};

pub use choose::{active_revision, start_first_possible, StartFirstError};
use choose::{find_revision, last_healthy, not_running, phase_word};
use containers::{observe, Observed};
use executor::{Executor, Reporter, RunEnd, RunReport, Target};
use options::{FailureAction, Order, RolloutFlags, RolloutOptions};
use progress::{EventKind, Progress};
use readiness::{image_health, ReadinessOptions, ReadinessPlan};
pub use recovery::{ContainerRow, StatusMode, StatusReport, UpPreparation};
use revisions::{
    InProgress, Kind, Outcome, Overrides, Phase, Revision, RevisionLog, ServiceLock, Who,
};

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    UnknownService(#[from] crate::compose::UnknownService),
    #[error("service {service} is not running ({detail}): a rollout replaces running containers; start it first with `muster up {service}`")]
    NotRunning { service: String, detail: String },
    #[error("service {service}: image {image} is not present on the engine and pull_policy is never (pull or load it first); nothing was changed")]
    MissingImage { service: String, image: String },
    #[error("service {service}: the new image could not be pulled; nothing was changed")]
    Pull {
        service: String,
        #[source]
        source: Box<crate::engine::PullError>,
    },
    #[error("service {service} is being rolled out by {owner} (its lock expires in {}s unless refreshed); follow it with `muster rollout status {service}`", expires_in_ms.div_ceil(1000))]
    Locked {
        service: String,
        owner: String,
        expires_in_ms: u64,
    },
    #[error("service {service}: {message}")]
    Options { service: String, message: String },
    #[error("service {service}: revision {revision} is not in the history (it has: {kept}); see `muster history {service}`")]
    NoRevision {
        service: String,
        revision: u64,
        kept: String,
    },
    #[error("service {service}: {message}")]
    Service { service: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Translate(#[from] TranslateError),
    #[error("{0}")]
    Graph(#[from] crate::compose::graph::GraphError),
}

/// The result of one service's rollout or rollback.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceResult {
    pub service: String,
    /// The revision made (none when there was nothing to do).
    pub revision: Option<u64>,
    pub outcome: Option<Outcome>,
    pub healthy: bool,
    pub replaced: u32,
    pub replicas: u32,
    pub failures: u32,
    pub message: String,
    pub elapsed_ms: u64,
}

impl ServiceResult {
    /// Exit 0 only for a rollout that went through (or had nothing to do).
    pub fn ok(&self) -> bool {
        matches!(self.outcome, None | Some(Outcome::Succeeded))
    }
}

/// What `muster rollout` was asked.
#[derive(Debug, Clone, Default)]
pub struct RolloutRequest {
    /// Services, rolled in dependency order.
    pub services: Vec<String>,
    /// service -> image reference (`--image`).
    pub images: BTreeMap<String, String>,
    /// `--env K=V`, for every named service.
    pub env: BTreeMap<String, String>,
    pub flags: RolloutFlags,
}

/// The commands, for one project.
pub struct Rollouts {
    pub engine: Engine,
    pub project: Project,
    /// What readiness needs of muster's settings.
    pub settings: ReadinessOptions,
    pub store: HistoryStore,
    pub who: Who,
    pub progress: Arc<dyn Progress>,
    /// Turns true on Ctrl-C: stop at the next safe point.
    pub cancel: watch::Receiver<bool>,
}

/// Where a run starts from.
struct Drive {
    revision: Revision,
    from: Revision,
    options: RolloutOptions,
    record: InProgress,
    /// Go straight to returning to `record.target` (a recovered revert, or `--revert`).
    /// With the reason.
    revert_to: Option<(Revision, String)>,
    verify_existing: bool,
    rollback: bool,
}

impl Rollouts {
    fn service(&self, name: &str) -> Result<&Service, RolloutError> {
        Ok(self.project.service(name)?)
    }

    fn reporter(&self, service: &str, record: Option<InProgress>) -> Reporter {
        Reporter {
            service: service.to_string(),
            progress: self.progress.clone(),
            store: self.store.clone(),
            record: Mutex::new(record),
        }
    }

    /// `muster rollout SERVICES…`: each service in dependency order; stops at
    /// the first that does not succeed.
    pub async fn rollout(&self, req: &RolloutRequest) -> Result<Vec<ServiceResult>, RolloutError> {
        if req.services.is_empty() {
            return Err(RolloutError::Options {
                service: String::new(),
                message: "name at least one service to roll out".into(),
            });
        }
        for name in req.services.iter().chain(req.images.keys()) {
            self.service(name)?;
        }
        for name in req.images.keys() {
            if !req.services.contains(name) {
                return Err(RolloutError::Options {
                    service: name.clone(),
                    message: format!("--image {name}=… names a service that is not rolled out; add {name} to the services"),
                });
            }
        }
        let order = self.dependency_order(&req.services)?;
        // Everything that can be checked up front is, so a bad second service
        // does not leave the first rolled out.
        for name in &order {
            self.service(name)?;
            let observed = observe(&self.engine, &self.project.name, name).await?;
            let record = InProgress::load(&self.store, name).await?;
            if record.is_none() && !observed.iter().any(|c| c.running) {
                return Err(not_running(name, &observed));
            }
        }
        // The new images: present, or pulled now (with progress) unless the
        // policy is `never` — every one before the first service changes.
        for name in &order {
            let service = self.service(name)?;
            let mut spec = service.clone();
            if let Some(image) = req.images.get(name) {
                spec.image = Some(image.clone());
            }
            if let Some(image) = spec.image.clone() {
                self.ensure_image(name, &spec, &image, &self.reporter(name, None))
                    .await?;
            }
        }
        let mut results = Vec::new();
        for name in &order {
            let new = Overrides {
                image: req.images.get(name).cloned(),
                env: req.env.clone(),
            };
            let result = self.rollout_service(name, &new, &req.flags).await?;
            // X's containers changed (rolled out or back): its namespace's joiners follow.
            self.rejoin_dependents(name).await;
            let ok = result.ok();
            results.push(result);
            if !ok {
                for rest in order.iter().skip(results.len()) {
                    results.push(ServiceResult {
                        service: rest.clone(),
                        revision: None,
                        outcome: None,
                        healthy: false,
                        replaced: 0,
                        replicas: self.service(rest)?.replicas,
                        failures: 0,
                        message: format!("not rolled out: {name} did not succeed"),
                        elapsed_ms: 0,
                    });
                }
                break;
            }
        }
        Ok(results)
    }

    /// Dependencies first (a service's dependencies roll before it).
    fn dependency_order(&self, services: &[String]) -> Result<Vec<String>, RolloutError> {
        let graph = crate::compose::graph::Graph::new(&self.project)?;
        let wanted: BTreeSet<String> = services.iter().cloned().collect();
        Ok(graph.levels_of(&wanted).into_iter().flatten().collect())
    }

    async fn rollout_service(
        &self,
        name: &str,
        new: &Overrides,
        flags: &RolloutFlags,
    ) -> Result<ServiceResult, RolloutError> {
        let lock = ServiceLock::acquire(&self.store, name, &self.who).await?;
        let result = self.rollout_locked(name, new, flags, &lock).await;
        lock.release().await;
        result
    }

    /// `muster history SERVICE`: revisions, newest first, and the one most
    /// containers run (when the engine answers).
    pub async fn history(&self, name: &str) -> Result<(Vec<Revision>, Option<u64>), RolloutError> {
        self.service(name)?;
        let revisions = RevisionLog::new(&self.store, name).list().await?;
        let observed = observe(&self.engine, &self.project.name, name).await?;
        let active = active_revision(&observed, &revisions).map(|r| r.number);
        Ok((revisions, active))
    }
}
