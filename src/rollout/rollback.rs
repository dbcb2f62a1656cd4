//! `muster rollback`: a new revision with the spec of an older one, driven
//! by the same executor as a rollout.

use super::*;

impl Rollouts {
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
        self.rejoin_dependents(name).await;
        result
    }

    pub(super) async fn rollback_locked(
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
}
