//! Recovery: `muster rollout status` (follow a rollout another muster
//! drives; finish or revert one whose muster died; resume or revert a paused
//! one) and what `muster up` must do so it never undoes a rollout.
//!
//! An unfinished rollout is known by its in-progress record
//! (`rollout:{service}`) and its lock: a record whose lock is held by a live
//! process is followed; a record whose lock is free (or whose owner died on
//! this host) is picked up. The executor converges from whatever state the
//! containers are in, so finishing and reverting are the same code as a
//! rollout.

use std::time::Instant;

use serde::Serialize;

use super::containers::{self, observe};
use super::progress::{self, EventKind};
use super::revisions::{InProgress, Kind, Phase, RevisionLog, ServiceLock};
use super::{
    active_revision, find_revision, phase_word, Drive, RolloutError, Rollouts, ServiceResult,
};
use crate::clock::now_ms;
use crate::compose::{Project, Service};
use crate::engine::labels::config_hash;

/// What `muster rollout status` does with an unfinished rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusMode {
    /// Follow a running one; finish one whose muster died; report a paused one.
    #[default]
    Default,
    /// Also resume a paused one.
    Resume,
    /// Return an unfinished one to the revision that ran before it.
    Revert,
}

/// What `muster rollout status` saw and did.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub service: String,
    /// The revision most containers run.
    pub active: Option<u64>,
    pub containers: Vec<ContainerRow>,
    /// The unfinished rollout, as found.
    pub unfinished: Option<InProgress>,
    /// What was done about it.
    pub action: String,
    pub result: Option<ServiceResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerRow {
    pub name: String,
    pub revision: Option<u64>,
    pub image: String,
    pub state: String,
    pub health: Option<String>,
    /// Holds the service's DNS name.
    pub serving: bool,
}

/// What `muster up` must do about rollouts before it reconciles containers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpPreparation {
    /// Lines for people (`web: keeping revision 4 …`).
    pub notes: Vec<String>,
    /// Rollouts finished first (their muster had died).
    pub recovered: Vec<ServiceResult>,
}

impl Rollouts {
    /// `muster rollout status SERVICE`: the containers and the unfinished
    /// rollout, if any. A rollout driven by a live muster is followed until it
    /// ends; one whose muster died is finished (or reverted with `--revert`);
    /// a paused one is reported, resumed with `--resume`, reverted with `--revert`.
    pub async fn status(&self, name: &str, mode: StatusMode) -> Result<StatusReport, RolloutError> {
        let compose = self.service(name)?.clone();
        let mut followed: Option<String> = None;
        let mut seen = 0u64;
        let lock = loop {
            match ServiceLock::acquire(&self.store, name, &self.who).await {
                Ok(lock) => break lock,
                Err(RolloutError::Locked { owner, .. }) => {
                    followed.get_or_insert(owner);
                    seen = self.follow_once(name, seen).await?;
                    if *self.cancel.borrow() {
                        let mut report = self.snapshot(name, &compose).await?;
                        report.action = "stopped following (Ctrl-C); the rollout goes on".into();
                        return Ok(report);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let result = self
            .status_locked(name, mode, &compose, &lock, followed)
            .await;
        lock.release().await;
        result
    }

    /// Emits the progress lines another muster wrote into the record since `seen`.
    async fn follow_once(&self, name: &str, seen: u64) -> Result<u64, RolloutError> {
        let mut last = seen;
        if let Some(rec) = InProgress::load(&self.store, name).await? {
            for (seq, line) in &rec.log {
                if *seq > last {
                    last = *seq;
                    self.progress.emit(&progress::Event {
                        service: name.to_string(),
                        at_ms: now_ms(),
                        kind: EventKind::Remote {
                            owner: rec.owner.clone(),
                            line: line.clone(),
                        },
                    });
                }
            }
        }
        Ok(last)
    }

    /// The containers as they are, with nothing done.
    async fn snapshot(&self, name: &str, compose: &Service) -> Result<StatusReport, RolloutError> {
        let observed = observe(&self.engine, &self.project.name, name).await?;
        let revisions = RevisionLog::new(&self.store, name).list().await?;
        let networks: Vec<String> =
            crate::engine::translate::container_spec(&self.project, compose, 1)
                .map(|s| {
                    containers::endpoints(&s)
                        .into_iter()
                        .map(|(n, _)| n)
                        .collect()
                })
                .unwrap_or_default();
        Ok(StatusReport {
            service: name.to_string(),
            active: active_revision(&observed, &revisions).map(|r| r.number),
            containers: observed
                .iter()
                .map(|c| ContainerRow {
                    name: c.name.clone(),
                    revision: c.revision,
                    image: c.image.clone(),
                    state: c.status.clone(),
                    health: c.health.as_ref().map(|h| h.to_string()),
                    serving: c.running && (networks.is_empty() || c.serves_as(name)),
                })
                .collect(),
            unfinished: InProgress::load(&self.store, name).await?,
            action: "nothing in progress".into(),
            result: None,
        })
    }

    async fn status_locked(
        &self,
        name: &str,
        mode: StatusMode,
        compose: &Service,
        lock: &ServiceLock,
        followed: Option<String>,
    ) -> Result<StatusReport, RolloutError> {
        let began = Instant::now();
        let log = RevisionLog::new(&self.store, name);
        let record = InProgress::load(&self.store, name).await?;
        let mut action = match &followed {
            Some(owner) => format!("followed the rollout by {owner} to its end"),
            None => "nothing in progress".to_string(),
        };
        let mut result = None;
        if let Some(rec) = &record {
            let revisions = log.list().await?;
            let find = |n: u64| find_revision(&revisions, name, n);
            let what = match (rec.phase, mode) {
                (Phase::Paused, StatusMode::Default) => None,
                (_, StatusMode::Revert) => Some((true, "reverting it".to_string())),
                (Phase::Reverting, _) => Some((true, "finishing the way back".to_string())),
                (Phase::Paused, StatusMode::Resume) => Some((false, "resuming it".to_string())),
                (Phase::Running, _) => {
                    Some((false, "finishing it (its muster is gone)".to_string()))
                }
            };
            match what {
                None => {
                    action = format!(
                        "paused ({}); resume with `muster rollout status {name} --resume`, or revert with `--revert` / `muster rollback {name}`",
                        rec.reason.as_deref().unwrap_or("no reason recorded")
                    );
                }
                Some((reverting, words)) => {
                    let reporter = self.reporter(name, None);
                    reporter
                        .report(EventKind::Recovering {
                            revision: rec.revision,
                            phase: phase_word(rec.phase).into(),
                            owner: rec.owner.clone(),
                            action: words.clone(),
                        })
                        .await;
                    // The revision record is written when a run ends; the
                    // failures a killed muster had seen are only in the
                    // in-progress record, next to the reason they caused.
                    let mut revision = find(rec.revision)?;
                    revision.failures = revision.failures.max(rec.failures);
                    let from = find(rec.from)?;
                    let revert_to = match (reverting, rec.phase) {
                        (false, _) => None,
                        (true, Phase::Reverting) => Some((
                            find(rec.target)?,
                            rec.reason
                                .clone()
                                .unwrap_or_else(|| "its way back was interrupted".into()),
                        )),
                        (true, _) => Some((
                            from.clone(),
                            format!("reverted with `muster rollout status {name} --revert`"),
                        )),
                    };
                    let mut options = rec.options.clone();
                    options.force = true;
                    let mut record = rec.clone();
                    record.owner = self.who.owner();
                    record.phase = if reverting {
                        Phase::Reverting
                    } else {
                        Phase::Running
                    };
                    result = Some(
                        self.drive(
                            lock,
                            reporter,
                            Drive {
                                revision,
                                from,
                                options,
                                record,
                                revert_to,
                                verify_existing: true,
                                rollback: false,
                            },
                            began,
                        )
                        .await?,
                    );
                    action = words;
                }
            }
        }
        let mut report = self.snapshot(name, compose).await?;
        report.action = action;
        report.result = result;
        if report.result.is_some() {
            report.unfinished = None;
        } else {
            report.unfinished = record;
        }
        Ok(report)
    }

    /// Called by `muster up` before it reconciles containers:
    /// - a service whose rollout another muster is driving, or that is paused,
    ///   is refused (up would recreate half of it);
    /// - a rollout whose muster died is finished first;
    /// - a service that runs a revision made by a rollout keeps it (the
    ///   revision's image/env overrides are applied to `project`) as long as
    ///   the compose file still says what it said then; otherwise up follows
    ///   the file, and a note says so.
    pub async fn prepare_up(
        &self,
        services: &[String],
        project: &mut Project,
    ) -> Result<UpPreparation, RolloutError> {
        let mut out = UpPreparation::default();
        let names: Vec<String> = if services.is_empty() {
            project.services.keys().cloned().collect()
        } else {
            crate::compose::graph::Graph::new(project)?
                .closure(services)?
                .into_iter()
                .collect()
        };
        for name in &names {
            if let Some(rec) = InProgress::load(&self.store, name).await? {
                if rec.phase == Phase::Paused {
                    return Err(RolloutError::Service {
                        service: name.clone(),
                        message: format!(
                            "its rollout to revision {} is paused ({}); `muster up` would undo half of it: resume it with `muster rollout status {name} --resume` or revert it with `--revert`, then run up",
                            rec.revision,
                            rec.reason.as_deref().unwrap_or("no reason recorded")
                        ),
                    });
                }
                // A live muster driving it: refused (Locked names it). A dead one's: finished here.
                let lock = ServiceLock::acquire(&self.store, name, &self.who).await?;
                let compose = self.service(name)?.clone();
                let report = self
                    .status_locked(name, StatusMode::Default, &compose, &lock, None)
                    .await;
                lock.release().await;
                let report = report?;
                if let Some(r) = report.result {
                    out.notes.push(format!(
                        "{name}: finished the interrupted rollout to revision {} ({})",
                        r.revision.unwrap_or(0),
                        r.outcome.map(|o| o.as_str()).unwrap_or("-")
                    ));
                    out.recovered.push(r);
                }
            }
            let Some(compose) = project.services.get(name).cloned() else {
                continue;
            };
            let revisions = RevisionLog::new(&self.store, name).list().await?;
            if revisions.is_empty() {
                continue;
            }
            let observed = observe(&self.engine, &project.name, name).await?;
            let Some(active) = active_revision(&observed, &revisions) else {
                continue;
            };
            if active.overrides.is_empty() {
                if active.config_hash != config_hash(&compose) && active.kind != Kind::Baseline {
                    out.notes.push(format!(
                        "{name}: the compose file changed since revision {}; up recreates its containers from the file (use `muster rollout {name}` to change it batch by batch)",
                        active.number
                    ));
                }
                continue;
            }
            let applied = active.overrides.apply(&compose);
            if config_hash(&applied) == active.config_hash {
                out.notes.push(format!(
                    "{name}: keeping revision {} ({}) made by `muster {}`",
                    active.number,
                    active.overrides.describe(),
                    match active.kind {
                        Kind::Rollback { .. } => "rollback",
                        Kind::Baseline => "rollout (baseline)",
                        Kind::Rollout => "rollout",
                    }
                ));
                project.services.insert(name.clone(), applied);
            } else {
                out.notes.push(format!(
                    "{name}: the compose file changed since revision {} ({}); up recreates its containers from the file, dropping those changes (use `muster rollout {name}` to change it batch by batch)",
                    active.number,
                    active.overrides.describe()
                ));
            }
        }
        Ok(out)
    }
}
