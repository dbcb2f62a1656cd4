//! One rollout of one service, under its lock: the options and the new
//! revision record, the baseline (the revision running now, recorded first
//! when `up` or `docker compose` made the containers), and the drive that runs
//! the executor towards the target and back again when it fails.

use super::*;
use crate::engine::Health;

impl Rollouts {
    pub(super) async fn rollout_locked(
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
            message: "no image (set `image:`, or give --image)".into(),
        })?;
        // `rollout()` pulled it (if the policy says so) before any service changed.
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
    pub(super) async fn options_for(
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
        let mut options =
            options::resolve(flags, spec, rollback).map_err(|e| err(e.to_string()))?;
        let image = spec.image.clone().unwrap_or_default();
        let plan = ReadinessPlan::new(
            spec,
            &self.settings,
            image_health(&self.engine, &image).await,
        );
        if let Some(warning) = options
            .check_monitor(plan.minimum_monitor())
            .map_err(|e| err(e.to_string()))?
        {
            reporter.warn(warning).await;
        }
        if options.order == Order::StartFirst {
            start_first_possible(spec).map_err(|e| err(e.to_string()))?;
        }
        Ok(options)
    }

    pub(super) fn new_record(
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
    pub(super) async fn baseline(
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
                .all(|c| c.health.as_ref().is_none_or(|h| *h == Health::Healthy));
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
    pub(super) async fn drive(
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
}
