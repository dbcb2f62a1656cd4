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
//! - this module: the commands, recovery of an interrupted rollout, and what
//!   `muster up` must know so it does not undo a rollout ([`Rollouts::prepare_up`]).
//!
//! docs/readme/rollout.md describes the behaviour for operators.

pub mod containers;
pub mod executor;
pub mod options;
pub mod progress;
pub mod readiness;
pub mod recovery;
pub mod revisions;

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

use containers::{observe, Observed};
use executor::{Executor, Reporter, RunEnd, RunReport, Target};
use options::{FailureAction, Order, RolloutFlags, RolloutOptions};
use progress::{EventKind, Progress};
use readiness::{image_health, ReadinessOptions, ReadinessPlan};
pub use recovery::{ContainerRow, StatusMode, StatusReport, UpPreparation};
use revisions::{
    now_ms, InProgress, Kind, Outcome, Overrides, Phase, Revision, RevisionLog, ServiceLock, Who,
};

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("no such service: {name} (project {project} has: {known})")]
    UnknownService {
        name: String,
        project: String,
        known: String,
    },
    #[error("service {service} is not running ({detail}): a rollout replaces running containers; start it first with `muster up {service}`")]
    NotRunning { service: String, detail: String },
    #[error("service {service}: image {image} is not present on the engine (muster never pulls: build or load it first); nothing was changed")]
    MissingImage { service: String, image: String },
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
        self.project
            .services
            .get(name)
            .ok_or_else(|| RolloutError::UnknownService {
                name: name.to_string(),
                project: self.project.name.clone(),
                known: self
                    .project
                    .services
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
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
            let service = self.service(name)?;
            let image = req
                .images
                .get(name)
                .cloned()
                .or_else(|| service.image.clone());
            if let Some(image) = image {
                if self.engine.image_info(&image).await?.is_none() {
                    return Err(RolloutError::MissingImage {
                        service: name.clone(),
                        image,
                    });
                }
            }
            let observed = observe(&self.engine, &self.project.name, name).await?;
            let record = InProgress::load(&self.store, name).await?;
            if record.is_none() && !observed.iter().any(|c| c.running) {
                return Err(not_running(name, &observed));
            }
        }
        let mut results = Vec::new();
        for name in &order {
            let new = Overrides {
                image: req.images.get(name).cloned(),
                env: req.env.clone(),
            };
            let result = self.rollout_service(name, &new, &req.flags).await?;
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

    async fn rollout_locked(
        &self,
        name: &str,
        new: &Overrides,
        flags: &RolloutFlags,
        lock: &ServiceLock,
    ) -> Result<ServiceResult, RolloutError> {
        let began = Instant::now();
        let compose = self.service(name)?.clone();
        let log = RevisionLog::new(&self.store, name);
        let record = InProgress::load(&self.store, name).await?;
        let observed = observe(&self.engine, &self.project.name, name).await?;
        if record.is_none() && !observed.iter().any(|c| c.running) {
            return Err(not_running(name, &observed));
        }
        let reporter = self.reporter(name, None);
        let mut revisions = log.list().await?;
        // An unfinished rollout (its muster died, or it was paused) is superseded.
        let active = match &record {
            Some(rec) => {
                reporter
                    .report(EventKind::Recovering {
                        revision: rec.revision,
                        phase: phase_word(rec.phase).into(),
                        owner: rec.owner.clone(),
                        action: "superseded by this rollout".into(),
                    })
                    .await;
                if let Some(mut old) = revisions.iter().find(|r| r.number == rec.revision).cloned()
                {
                    old.outcome = Outcome::Superseded;
                    old.finished_ms = Some(now_ms());
                    old.message = "a newer rollout replaced it before it finished".into();
                    log.update(&old).await?;
                }
                revisions = log.list().await?;
                revisions.iter().find(|r| r.number == rec.from).cloned()
            }
            None => active_revision(&observed, &revisions),
        };
        // No revision yet: the running containers become one (recorded once
        // the rollout is known to be possible).
        let (active, baseline) = match active {
            Some(a) => (a, false),
            None => (self.baseline(name, &compose, &observed).await?, true),
        };

        // The target: the compose file, with what the running revision changed
        // (while the file still says what it said then), with the new changes on top.
        let base_hash = config_hash(&compose);
        let carried = if active.base_hash == base_hash {
            active.overrides.clone()
        } else {
            if !active.overrides.is_empty() {
                reporter
                    .warn(format!(
                        "the compose file changed since revision {}; its changes ({}) are not carried over",
                        active.number,
                        active.overrides.describe()
                    ))
                    .await;
            }
            Overrides::default()
        };
        let overrides = carried.merged(new);
        let mut spec = overrides.apply(&compose);
        spec.replicas = compose.replicas;
        let image = spec.image.clone().ok_or_else(|| RolloutError::Service {
            service: name.to_string(),
            message: "no image (muster never builds; set `image:` or give --image)".into(),
        })?;
        let info =
            self.engine
                .image_info(&image)
                .await?
                .ok_or_else(|| RolloutError::MissingImage {
                    service: name.to_string(),
                    image: image.clone(),
                })?;
        let target_hash = config_hash(&spec);
        if record.is_none() && !flags.force {
            let running: Vec<&Observed> = observed.iter().filter(|c| c.running).collect();
            let same = running.len() as u32 == compose.replicas
                && running
                    .iter()
                    .all(|c| c.config_hash.as_deref() == Some(target_hash.as_str()));
            if same {
                return Ok(ServiceResult {
                    service: name.to_string(),
                    revision: (!baseline).then_some(active.number),
                    outcome: None,
                    healthy: active.healthy,
                    replaced: 0,
                    replicas: compose.replicas,
                    failures: 0,
                    message: format!(
                        "nothing to roll out: {name} already runs this configuration ({}); --force rolls out anyway",
                        if baseline {
                            "no revision recorded yet".to_string()
                        } else {
                            format!("revision {}", active.number)
                        }
                    ),
                    elapsed_ms: began.elapsed().as_millis() as u64,
                });
            }
        }
        let options = self
            .options_for(name, flags, &spec, false, &reporter)
            .await?;
        let mut active = active;
        if baseline {
            active.number = log.next_number().await?;
            log.push(&active, options.history_limit).await?;
            reporter
                .report(EventKind::Baseline {
                    revision: active.number,
                    image: active.image.clone(),
                })
                .await;
        }
        let number = log.next_number().await?;
        let revision = Revision {
            number,
            service: name.to_string(),
            kind: Kind::Rollout,
            image: image.clone(),
            image_id: info.id,
            overrides,
            config_hash: target_hash,
            base_hash,
            previous: Some(active.number),
            who: self.who.user_at_host(),
            started_ms: now_ms(),
            finished_ms: None,
            outcome: Outcome::InProgress,
            healthy: false,
            replicas: compose.replicas,
            replaced: 0,
            failures: 0,
            message: String::new(),
            spec,
        };
        log.push(&revision, options.history_limit).await?;
        let record = self.new_record(&revision, &active, &options);
        self.drive(
            lock,
            reporter,
            Drive {
                revision,
                from: active,
                options,
                record,
                revert_to: None,
                verify_existing: false,
                rollback: false,
            },
            began,
        )
        .await
    }

    /// Options for a rollout of `spec`, with the guard rails checked.
    async fn options_for(
        &self,
        name: &str,
        flags: &RolloutFlags,
        spec: &Service,
        rollback: bool,
        reporter: &Reporter,
    ) -> Result<RolloutOptions, RolloutError> {
        let err = |message: String| RolloutError::Options {
            service: name.to_string(),
            message,
        };
        let mut options = options::resolve(flags, spec, rollback).map_err(err)?;
        let image = spec.image.clone().unwrap_or_default();
        let plan = ReadinessPlan::new(
            spec,
            &self.settings,
            image_health(&self.engine, &image).await,
        );
        if let Some(warning) = options.check_monitor(plan.minimum_monitor()).map_err(err)? {
            reporter.warn(warning).await;
        }
        if options.order == Order::StartFirst {
            start_first_possible(spec).map_err(err)?;
        }
        Ok(options)
    }

    fn new_record(
        &self,
        revision: &Revision,
        from: &Revision,
        options: &RolloutOptions,
    ) -> InProgress {
        InProgress {
            service: revision.service.clone(),
            revision: revision.number,
            from: from.number,
            target: revision.number,
            phase: Phase::Running,
            owner: self.who.owner(),
            started_ms: now_ms(),
            updated_ms: now_ms(),
            options: options.clone(),
            replicas: revision.replicas,
            replaced: 0,
            failures: 0,
            reason: None,
            log: Vec::new(),
        }
    }

    /// The running containers as a revision (the first rollout of a service);
    /// its number is given when it is recorded.
    async fn baseline(
        &self,
        name: &str,
        compose: &Service,
        observed: &[Observed],
    ) -> Result<Revision, RolloutError> {
        let running: Vec<&Observed> = observed.iter().filter(|c| c.running).collect();
        let image = running
            .first()
            .map(|c| c.image.clone())
            .filter(|i| !i.is_empty())
            .or_else(|| compose.image.clone())
            .unwrap_or_default();
        let overrides = Overrides {
            image: (compose.image.as_deref() != Some(image.as_str())).then(|| image.clone()),
            env: BTreeMap::new(),
        };
        let spec = overrides.apply(compose);
        let image_id = self
            .engine
            .image_info(&image)
            .await?
            .map(|i| i.id)
            .unwrap_or_default();
        let healthy = !running.is_empty()
            && running
                .iter()
                .all(|c| c.health.as_deref().is_none_or(|h| h == "healthy"));
        Ok(Revision {
            number: 0,
            service: name.to_string(),
            kind: Kind::Baseline,
            image: image.clone(),
            image_id,
            overrides,
            config_hash: running
                .first()
                .and_then(|c| c.config_hash.clone())
                .unwrap_or_else(|| config_hash(&spec)),
            base_hash: config_hash(compose),
            previous: None,
            who: self.who.user_at_host(),
            started_ms: now_ms(),
            finished_ms: Some(now_ms()),
            outcome: Outcome::Succeeded,
            healthy,
            replicas: running.len() as u32,
            replaced: running.len() as u32,
            failures: 0,
            message: "the containers that ran before the first rollout".into(),
            spec,
        })
    }

    /// Runs a rollout to its end: the forward run, then (on failure with
    /// `rollback`) the way back; updates the revision and the record.
    async fn drive(
        &self,
        lock: &ServiceLock,
        reporter: Reporter,
        drive: Drive,
        began: Instant,
    ) -> Result<ServiceResult, RolloutError> {
        let Drive {
            mut revision,
            from,
            options,
            record,
            revert_to,
            verify_existing,
            rollback,
        } = drive;
        let name = revision.service.clone();
        let log = RevisionLog::new(&self.store, &name);
        let known: BTreeSet<u64> = log.list().await?.iter().map(|r| r.number).collect();
        *reporter.record.lock().await = Some(record);
        let replicas = self.service(&name)?.replicas;
        let target_of = |r: &Revision| Target {
            revision: r.number,
            spec: Service {
                replicas,
                ..r.spec.clone()
            },
            legacy: r.kind == Kind::Baseline,
            known: known.clone(),
        };

        let mut keep_record = false;
        let mut report = RunReport {
            end: RunEnd::Completed { kept: 0 },
            replaced: 0,
            failures: 0,
            healthy: false,
        };
        let mut revert = revert_to;
        if revert.is_none() {
            reporter
                .report(EventKind::Plan {
                    revision: revision.number,
                    from: from.number,
                    image: revision.image.clone(),
                    replicas,
                    options: options.describe(),
                    rollback,
                })
                .await;
            report = Executor {
                engine: &self.engine,
                project: &self.project,
                settings: &self.settings,
                reporter: &reporter,
                lock,
                cancel: self.cancel.clone(),
                target: target_of(&revision),
                fallback: Some(target_of(&from)),
                options: options.clone(),
                replicas,
                verify_existing,
            }
            .run()
            .await?;
            revision.replaced = report.replaced;
            revision.failures = report.failures;
            match &report.end {
                RunEnd::Completed { kept: 0 } => {
                    revision.outcome = Outcome::Succeeded;
                    revision.healthy = report.healthy;
                }
                RunEnd::Completed { kept } => {
                    revision.outcome = Outcome::Failed;
                    revision.message = format!(
                        "{kept} slot(s) kept revision {} (failure_action continue)",
                        from.number
                    );
                }
                RunEnd::Paused { reason } => {
                    revision.outcome = Outcome::Paused;
                    revision.message = reason.clone();
                    keep_record = true;
                }
                RunEnd::Interrupted => {
                    revision.outcome = Outcome::Paused;
                    revision.message =
                        "interrupted (Ctrl-C); `muster rollout status` resumes or reverts it"
                            .into();
                    keep_record = true;
                }
                RunEnd::Failed { reason } => {
                    let to = if options.auto_revert {
                        last_healthy(&log.list().await?, revision.number).unwrap_or(from.clone())
                    } else {
                        from.clone()
                    };
                    revert = Some((to, reason.clone()));
                }
            }
        }
        if let Some((to, reason)) = revert {
            {
                let mut rec = reporter.record.lock().await;
                if let Some(r) = rec.as_mut() {
                    r.phase = Phase::Reverting;
                    r.target = to.number;
                    r.reason = Some(reason.clone());
                }
            }
            reporter
                .report(EventKind::Reverting {
                    to: to.number,
                    image: to.image.clone(),
                    reason: reason.clone(),
                })
                .await;
            let spec = &self.service(&name)?.clone();
            let mut back = match options::resolve(
                &RolloutFlags {
                    force: true,
                    ..Default::default()
                },
                spec,
                true,
            ) {
                Ok(o)
                    if spec
                        .deploy
                        .as_ref()
                        .is_some_and(|d| d.rollback_config.is_some()) =>
                {
                    o
                }
                _ => options.clone(),
            };
            // A way back that fails stops where it is; it never turns around again.
            back.failure_action = FailureAction::Pause;
            back.monitor = back.monitor.max(options.monitor);
            if back.order == Order::StartFirst && start_first_possible(&to.spec).is_err() {
                back.order = Order::StopFirst;
                back.max_unavailable = back.max_unavailable.max(1);
            }
            let back_report = Executor {
                engine: &self.engine,
                project: &self.project,
                settings: &self.settings,
                reporter: &reporter,
                lock,
                cancel: self.cancel.clone(),
                target: target_of(&to),
                fallback: None,
                options: back,
                replicas,
                verify_existing: false,
            }
            .run()
            .await?;
            revision.failures = revision.failures.max(report.failures);
            match back_report.end {
                RunEnd::Completed { .. } => {
                    revision.outcome = Outcome::RolledBack;
                    revision.message = format!("{reason}; returned to revision {}", to.number);
                    revision.replaced = 0;
                }
                RunEnd::Interrupted => {
                    revision.outcome = Outcome::Paused;
                    revision.message = format!(
                        "{reason}; the way back to revision {} was interrupted; `muster rollout status {name}` finishes it",
                        to.number
                    );
                    keep_record = true;
                }
                RunEnd::Failed { reason: r2 } | RunEnd::Paused { reason: r2 } => {
                    revision.outcome = Outcome::Failed;
                    revision.message = format!(
                        "{reason}; returning to revision {} failed too: {r2}",
                        to.number
                    );
                    keep_record = true;
                    let mut rec = reporter.record.lock().await;
                    if let Some(r) = rec.as_mut() {
                        r.phase = Phase::Paused;
                        r.reason = Some(revision.message.clone());
                    }
                }
            }
        }
        revision.finished_ms = Some(now_ms());
        log.update(&revision).await?;
        if keep_record {
            let mut rec = reporter.record.lock().await;
            if let Some(r) = rec.as_mut() {
                if r.phase != Phase::Reverting {
                    r.phase = Phase::Paused;
                }
                if r.reason.is_none() {
                    r.reason = Some(revision.message.clone());
                }
                r.save(&self.store).await?;
            }
        }
        let elapsed = began.elapsed();
        reporter
            .report(EventKind::Done {
                revision: revision.number,
                outcome: revision.outcome.as_str().to_string(),
                replaced: revision.replaced,
                failures: revision.failures,
                elapsed_ms: elapsed.as_millis() as u64,
                message: revision.message.clone(),
            })
            .await;
        if !keep_record {
            *reporter.record.lock().await = None;
            InProgress::delete(&self.store, &name).await?;
        }
        Ok(ServiceResult {
            service: name,
            revision: Some(revision.number),
            outcome: Some(revision.outcome),
            healthy: revision.healthy,
            replaced: revision.replaced,
            replicas,
            failures: revision.failures,
            message: revision.message,
            elapsed_ms: elapsed.as_millis() as u64,
        })
    }

    /// `muster rollback SERVICE [--to REV]`: a new revision with the spec of
    /// REV (default: the revision that ran before the running one; during an
    /// unfinished rollout, the revision it started from).
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<u64>,
        flags: &RolloutFlags,
    ) -> Result<ServiceResult, RolloutError> {
        let compose = self.service(name)?.clone();
        let lock = ServiceLock::acquire(&self.store, name, &self.who).await?;
        let result = self.rollback_locked(name, to, flags, &compose, &lock).await;
        lock.release().await;
        result
    }

    async fn rollback_locked(
        &self,
        name: &str,
        to: Option<u64>,
        flags: &RolloutFlags,
        compose: &Service,
        lock: &ServiceLock,
    ) -> Result<ServiceResult, RolloutError> {
        let began = Instant::now();
        let log = RevisionLog::new(&self.store, name);
        let record = InProgress::load(&self.store, name).await?;
        let observed = observe(&self.engine, &self.project.name, name).await?;
        if record.is_none() && !observed.iter().any(|c| c.running) {
            return Err(not_running(name, &observed));
        }
        let revisions = log.list().await?;
        let reporter = self.reporter(name, None);
        let find = |n: u64| find_revision(&revisions, name, n);
        let (active, default_target) = match &record {
            Some(rec) => {
                let unfinished = find(rec.revision)?;
                (unfinished, Some(rec.from))
            }
            None => {
                let active = active_revision(&observed, &revisions).ok_or_else(|| {
                    RolloutError::Service {
                        service: name.to_string(),
                        message: "no revision is recorded for the running containers, so there is nothing to go back to (`muster history` shows what is kept)".into(),
                    }
                })?;
                let previous = active.previous;
                (active, previous)
            }
        };
        let target_number = match to.or(default_target) {
            Some(n) => n,
            None => {
                return Err(RolloutError::Service {
                    service: name.to_string(),
                    message: format!(
                        "revision {} is the first one recorded; there is no earlier revision to go back to",
                        active.number
                    ),
                })
            }
        };
        let target = find(target_number)?;
        if record.is_none() && target.config_hash == active.config_hash && !flags.force {
            return Ok(ServiceResult {
                service: name.to_string(),
                revision: Some(active.number),
                outcome: None,
                healthy: active.healthy,
                replaced: 0,
                replicas: compose.replicas,
                failures: 0,
                message: format!(
                    "nothing to roll back: revision {} runs the same configuration as revision {target_number}",
                    active.number
                ),
                elapsed_ms: 0,
            });
        }
        let info = self
            .engine
            .image_info(&target.image)
            .await?
            .ok_or_else(|| RolloutError::MissingImage {
                service: name.to_string(),
                image: target.image.clone(),
            })?;
        if let Some(rec) = &record {
            reporter
                .report(EventKind::Recovering {
                    revision: rec.revision,
                    phase: phase_word(rec.phase).into(),
                    owner: rec.owner.clone(),
                    action: format!("rolled back to revision {target_number}"),
                })
                .await;
            let mut unfinished = active.clone();
            unfinished.outcome = Outcome::RolledBack;
            unfinished.finished_ms = Some(now_ms());
            unfinished.message = format!("`muster rollback` returned to revision {target_number}");
            log.update(&unfinished).await?;
        }
        let mut spec = target.spec.clone();
        spec.replicas = compose.replicas;
        let options = self
            .options_for(name, flags, &spec, true, &reporter)
            .await?;
        let number = log.next_number().await?;
        let revision = Revision {
            number,
            service: name.to_string(),
            kind: Kind::Rollback { to: target_number },
            image: target.image.clone(),
            image_id: info.id,
            overrides: target.overrides.clone(),
            config_hash: config_hash(&spec),
            base_hash: target.base_hash.clone(),
            previous: Some(active.number),
            who: self.who.user_at_host(),
            started_ms: now_ms(),
            finished_ms: None,
            outcome: Outcome::InProgress,
            healthy: false,
            replicas: compose.replicas,
            replaced: 0,
            failures: 0,
            message: String::new(),
            spec,
        };
        log.push(&revision, options.history_limit).await?;
        let from = match &record {
            Some(rec) => find(rec.from)?,
            None => active,
        };
        let record = self.new_record(&revision, &from, &options);
        self.drive(
            lock,
            reporter,
            Drive {
                revision,
                from,
                options,
                record,
                revert_to: None,
                verify_existing: false,
                rollback: true,
            },
            began,
        )
        .await
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

/// The revision most running containers carry. Containers without a
/// revision label (made by `up` or `docker compose`), or whose revision fell
/// out of the history, count as the newest baseline with their config hash;
/// when there is none, `None` (the next rollout records them as a baseline).
pub fn active_revision(observed: &[Observed], revisions: &[Revision]) -> Option<Revision> {
    let known: BTreeSet<u64> = revisions.iter().map(|r| r.number).collect();
    let mut counts: BTreeMap<Option<u64>, (usize, Option<String>)> = BTreeMap::new();
    for c in observed.iter().filter(|c| c.running) {
        let label = c.revision.filter(|r| known.contains(r));
        let entry = counts.entry(label).or_default();
        entry.0 += 1;
        if entry.1.is_none() {
            entry.1 = c.config_hash.clone();
        }
    }
    let (label, (_, hash)) = counts
        .into_iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(a.0.cmp(&b.0)))?;
    match label {
        Some(n) => revisions.iter().find(|r| r.number == n).cloned(),
        None => revisions
            .iter()
            .find(|r| r.kind == Kind::Baseline && Some(&r.config_hash) == hash.as_ref())
            .cloned(),
    }
}

/// The newest revision (other than `except`) that succeeded and was healthy.
fn last_healthy(revisions: &[Revision], except: u64) -> Option<Revision> {
    revisions
        .iter()
        .find(|r| r.number != except && r.healthy && r.outcome == Outcome::Succeeded)
        .cloned()
}

/// Revision `number` of `service`, or an error that lists the ones kept.
fn find_revision(
    revisions: &[Revision],
    service: &str,
    number: u64,
) -> Result<Revision, RolloutError> {
    revisions
        .iter()
        .find(|r| r.number == number)
        .cloned()
        .ok_or_else(|| RolloutError::NoRevision {
            service: service.to_string(),
            revision: number,
            kept: kept_list(revisions),
        })
}

fn kept_list(revisions: &[Revision]) -> String {
    if revisions.is_empty() {
        return "none".into();
    }
    revisions
        .iter()
        .map(|r| r.number.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn phase_word(phase: Phase) -> &'static str {
    match phase {
        Phase::Running => "running",
        Phase::Reverting => "reverting",
        Phase::Paused => "paused",
    }
}

fn not_running(service: &str, observed: &[Observed]) -> RolloutError {
    let detail = if observed.is_empty() {
        "it has no containers".to_string()
    } else {
        let states: Vec<String> = observed
            .iter()
            .map(|c| format!("{} {}", c.name, c.status))
            .collect();
        format!("no running container: {}", states.join(", "))
    };
    RolloutError::NotRunning {
        service: service.to_string(),
        detail,
    }
}

/// start-first needs two containers of the service side by side: not possible
/// with a fixed name, a fixed host port or a fixed address.
pub fn start_first_possible(service: &Service) -> Result<(), String> {
    let hint = "two containers of the service cannot run side by side, so start-first cannot work; use --order stop-first";
    if let Some(name) = &service.container_name {
        return Err(format!(
            "services.{}.container_name is {name:?}: {hint}",
            service.name
        ));
    }
    if let Some(port) = service.ports.iter().find(|p| p.published.is_some()) {
        return Err(format!(
            "services.{}.ports: host port {} is fixed: {hint}",
            service.name,
            port.published.as_deref().unwrap_or_default()
        ));
    }
    if let Some((net, _)) = service
        .networks
        .iter()
        .find(|(_, n)| n.ipv4_address.is_some())
    {
        return Err(format!(
            "services.{}.networks.{net}.ipv4_address is fixed: {hint}",
            service.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{Port, ServiceNetwork};

    fn container(number: u32, revision: Option<u64>, hash: &str, running: bool) -> Observed {
        Observed {
            id: format!("id{number}"),
            name: format!("p-web-{number}"),
            number,
            revision,
            running,
            status: if running { "running" } else { "exited" }.into(),
            exit_code: None,
            health: None,
            health_output: None,
            has_healthcheck: false,
            hostname: String::new(),
            image: "web".into(),
            config_hash: Some(hash.into()),
            networks: Default::default(),
        }
    }

    fn revision(number: u64, kind: Kind, hash: &str, outcome: Outcome, healthy: bool) -> Revision {
        Revision {
            number,
            service: "web".into(),
            kind,
            image: format!("web:{number}"),
            image_id: String::new(),
            overrides: Overrides::default(),
            config_hash: hash.into(),
            base_hash: hash.into(),
            previous: number.checked_sub(1).filter(|n| *n > 0),
            who: "u@h".into(),
            started_ms: 0,
            finished_ms: None,
            outcome,
            healthy,
            replicas: 2,
            replaced: 2,
            failures: 0,
            message: String::new(),
            spec: Service::default(),
        }
    }

    #[test]
    fn the_active_revision_is_what_most_running_containers_carry() {
        let revisions = vec![
            revision(3, Kind::Rollout, "h3", Outcome::RolledBack, false),
            revision(2, Kind::Rollout, "h2", Outcome::Succeeded, true),
            revision(1, Kind::Baseline, "h1", Outcome::Succeeded, true),
        ];
        let mixed = vec![
            container(1, Some(2), "h2", true),
            container(2, Some(2), "h2", true),
            container(3, None, "h1", true),
            container(4, Some(3), "h3", false),
        ];
        assert_eq!(active_revision(&mixed, &revisions).unwrap().number, 2);
        // Unlabelled containers are the baseline with their config hash …
        let unlabelled = vec![container(1, None, "h1", true)];
        assert_eq!(active_revision(&unlabelled, &revisions).unwrap().number, 1);
        // … and a new baseline when they are not (recreated from a changed file).
        let recreated = vec![container(1, None, "h9", true)];
        assert!(active_revision(&recreated, &revisions).is_none());
        // A label the history no longer knows counts as unlabelled.
        let forgotten = vec![container(1, Some(77), "h1", true)];
        assert_eq!(active_revision(&forgotten, &revisions).unwrap().number, 1);
        assert!(active_revision(&[], &revisions).is_none());
    }

    #[test]
    fn auto_revert_goes_to_the_last_healthy_revision() {
        let revisions = vec![
            revision(4, Kind::Rollout, "h4", Outcome::InProgress, false),
            revision(3, Kind::Rollout, "h3", Outcome::Succeeded, false),
            revision(2, Kind::Rollout, "h2", Outcome::Succeeded, true),
            revision(1, Kind::Baseline, "h1", Outcome::Succeeded, true),
        ];
        // Revision 3 ran before 4 but never was healthy: go to 2.
        assert_eq!(last_healthy(&revisions, 4).unwrap().number, 2);
        assert_eq!(kept_list(&revisions), "4, 3, 2, 1");
    }

    #[test]
    fn start_first_needs_two_side_by_side() {
        let mut s = Service {
            name: "web".into(),
            ..Default::default()
        };
        assert!(start_first_possible(&s).is_ok());
        s.ports.push(Port {
            target: 80,
            published: None,
            host_ip: None,
            protocol: "tcp".into(),
        });
        assert!(start_first_possible(&s).is_ok(), "ephemeral ports are fine");
        s.ports[0].published = Some("8080".into());
        assert!(start_first_possible(&s).unwrap_err().contains("8080"));
        s.ports.clear();
        s.networks.insert(
            "default".into(),
            ServiceNetwork {
                aliases: vec![],
                ipv4_address: Some("10.0.0.9".into()),
            },
        );
        assert!(start_first_possible(&s)
            .unwrap_err()
            .contains("ipv4_address"));
        s.networks.clear();
        s.container_name = Some("web".into());
        assert!(start_first_possible(&s)
            .unwrap_err()
            .contains("container_name"));
    }
}
