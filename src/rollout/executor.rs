//! The batch executor: brings one service's containers to a target revision,
//! batch by batch, from whatever state they are in.
//!
//! It converges rather than replays: it looks at the containers (their
//! revision label, whether they run, whether they hold the service's DNS
//! name), cleans up what an interrupted run left half-done, and replaces the
//! rest. The same code runs a rollout, an automatic rollback, `muster
//! rollback`, and the recovery of a rollout whose muster was killed.
//!
//! One batch, start-first:
//! 1. create `parallelism` new containers (fresh numbers, Compose labels plus
//!    `io.muster.revision`, *not* in the service's DNS name) and start them;
//! 2. wait until each is ready (see [`super::readiness`]), at most the progress deadline;
//! 3. ready ones join the service's DNS name, then must stay ready for the monitor window;
//! 4. for each one that made it, retire one old container: pre-stop hook,
//!    leave the DNS name, drain, stop (its stop_grace_period), remove.
//!
//! stop-first retires first (at most `max_unavailable` at once), then creates.
//! A new container that fails is removed; it never held the DNS name unless it
//! failed during its monitor window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::EndpointSettings;
use tokio::sync::{watch, Mutex};

use super::containers::{self, endpoints, observe, without_aliases, Observed};
use super::options::{FailureAction, Order, PreStop, RolloutOptions};
use super::progress::{Event, EventKind, Progress};
use super::readiness::{image_health, Checker, NotReady, ReadinessOptions, ReadinessPlan};
use super::revisions::{InProgress, ServiceLock, REVISION_LABEL};
use super::RolloutError;
use crate::clock::now_ms;
use crate::compose::{Project, Service};
use crate::engine::{translate, Engine};
use crate::history::HistoryStore;

/// Emits progress and keeps the in-progress record up to date.
pub struct Reporter {
    pub service: String,
    pub progress: Arc<dyn Progress>,
    pub store: HistoryStore,
    pub record: Mutex<Option<InProgress>>,
}

impl Reporter {
    pub async fn report(&self, kind: EventKind) {
        let event = Event {
            service: self.service.clone(),
            at_ms: now_ms(),
            kind,
        };
        self.progress.emit(&event);
        let mut record = self.record.lock().await;
        if let Some(r) = record.as_mut() {
            r.push_log(event.kind.human());
            if let Err(e) = r.save(&self.store).await {
                tracing::warn!(error = %e, "cannot update the in-progress record");
            }
        }
    }

    pub async fn warn(&self, message: impl Into<String>) {
        self.report(EventKind::Warning {
            message: message.into(),
        })
        .await;
    }

    /// Updates the record (replaced / failures) without a log line.
    pub async fn counts(&self, replaced: u32, failures: u32) {
        let mut record = self.record.lock().await;
        if let Some(r) = record.as_mut() {
            r.replaced = replaced;
            r.failures = failures;
            if let Err(e) = r.save(&self.store).await {
                tracing::warn!(error = %e, "cannot update the in-progress record");
            }
        }
    }
}

/// The revision containers are brought to.
#[derive(Debug, Clone)]
pub struct Target {
    pub revision: u64,
    /// What new containers are made from.
    pub spec: Service,
    /// This is a baseline: containers without a revision label, or with one
    /// the history no longer knows, count as this revision.
    pub legacy: bool,
    /// The revision numbers the history knows.
    pub known: std::collections::BTreeSet<u64>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every slot holds the target (or, with `continue`, `kept` slots kept the old one).
    Completed { kept: u32 },
    /// More failures than allowed and the action is rollback.
    Failed { reason: String },
    /// More failures than allowed and the action is pause.
    Paused { reason: String },
    /// Ctrl-C: stopped at a safe point.
    Interrupted,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub end: RunEnd,
    /// Containers of the target revision at the end.
    pub replaced: u32,
    pub failures: u32,
    /// Every new container that became ready also passed its monitor window.
    pub healthy: bool,
}

/// One convergence run.
pub struct Executor<'a> {
    pub engine: &'a Engine,
    pub project: &'a Project,
    pub settings: &'a ReadinessOptions,
    pub reporter: &'a Reporter,
    pub lock: &'a ServiceLock,
    pub cancel: watch::Receiver<bool>,
    pub target: Target,
    /// Restores a slot when a stop-first replacement fails (the revision that ran before).
    pub fallback: Option<Target>,
    pub options: RolloutOptions,
    /// Containers wanted at the end.
    pub replicas: u32,
    /// Check that target containers already serving are ready (a recovered run,
    /// whose muster may have died during their monitor window).
    pub verify_existing: bool,
}

/// A new container on its way in.
struct New {
    id: String,
    name: String,
    endpoints: Vec<(String, EndpointSettings)>,
    joined: bool,
}

impl Executor<'_> {
    fn service(&self) -> &str {
        &self.target.spec.name
    }

    fn is_target(&self, c: &Observed) -> bool {
        match c.revision {
            Some(r) if r == self.target.revision => true,
            Some(r) => self.target.legacy && !self.target.known.contains(&r),
            None => self.target.legacy,
        }
    }

    /// The service's networks (those with a DNS name), from translate.rs.
    fn networks(&self) -> Result<Vec<String>, RolloutError> {
        let spec = translate::container_spec(self.project, &self.target.spec, 1)?;
        Ok(endpoints(&spec).into_iter().map(|(n, _)| n).collect())
    }

    fn serving(&self, c: &Observed, networks: &[String]) -> bool {
        c.running && (networks.is_empty() || c.serves_as(self.service()))
    }

    fn interrupted(&self) -> bool {
        *self.cancel.borrow()
    }

    pub async fn run(mut self) -> Result<RunReport, RolloutError> {
        let networks = self.networks()?;
        let image = self.target.spec.image.clone().unwrap_or_default();
        let readiness = ReadinessPlan::new(
            &self.target.spec,
            self.settings,
            image_health(self.engine, &image).await,
        );

        // 1. Settle what an interrupted run left: half-made new containers go,
        //    old ones that were draining finish retiring, dead ones go.
        let observed = observe(self.engine, &self.project.name, self.service()).await?;
        let mut have: Vec<Observed> = Vec::new();
        let mut old: Vec<Observed> = Vec::new();
        let mut draining: Vec<Observed> = Vec::new();
        for c in observed {
            let target = self.is_target(&c);
            let serving = self.serving(&c, &networks);
            match (target, serving) {
                (true, true) => have.push(c),
                (true, false) => {
                    self.remove(
                        &c.id,
                        &c.name,
                        "not ready and joined: left by an interrupted run",
                    )
                    .await?
                }
                (false, true) => old.push(c),
                (false, false) if c.running => draining.push(c),
                (false, false) => self.remove(&c.id, &c.name, "not running").await?,
            }
        }
        if !draining.is_empty() {
            let names: Vec<String> = draining.iter().map(|c| c.name.clone()).collect();
            self.reporter
                .warn(format!(
                    "{} had left the service name (interrupted while draining); retiring",
                    names.join(", ")
                ))
                .await;
            self.retire_all(&draining).await;
        }
        // Target containers found serving (a recovered run): make sure they are ready.
        let mut failures = 0u32;
        let mut healthy = true;
        let mut kept = 0u32;
        let mut still = Vec::new();
        for c in have {
            if !self.verify_existing {
                still.push(c);
                continue;
            }
            let mut checker = match readiness.checker(self.engine, &c).await {
                Ok(ch) => ch,
                Err(e) => {
                    return Err(RolloutError::Service {
                        service: self.service().to_string(),
                        message: e.to_string(),
                    })
                }
            };
            let mut cancel = self.cancel.clone();
            match checker
                .wait_ready(self.engine, self.options.progress_deadline, &mut cancel)
                .await
            {
                Ok(_) => still.push(c),
                Err(reason) => {
                    failures += 1;
                    healthy = false;
                    self.reporter
                        .report(EventKind::ContainerFailed {
                            container: c.name.clone(),
                            reason: reason.to_string(),
                        })
                        .await;
                    self.take_out(&c.id, &c.name, &networks, true, "not ready")
                        .await;
                }
            }
        }
        let mut have = still.len() as u32;
        let want = self.replicas;
        let allowed = self.options.allowed_failures(want);
        let step = if self.options.parallelism == 0 {
            want.max(1)
        } else {
            self.options.parallelism
        };
        self.reporter.counts(have, failures).await;

        // 2. Batches.
        let mut batch = 0u32;
        loop {
            if self.lock.is_lost() {
                return Err(RolloutError::Service {
                    service: self.service().to_string(),
                    message: "the rollout lock was taken over by another muster; stopped".into(),
                });
            }
            if have + kept >= want {
                // Surplus old containers (more than wanted) go in one batch.
                if !old.is_empty() {
                    let extra: Vec<Observed> = std::mem::take(&mut old);
                    self.retire_all(&extra).await;
                }
                break;
            }
            if self.interrupted() {
                return Ok(RunReport {
                    end: RunEnd::Interrupted,
                    replaced: have,
                    failures,
                    healthy,
                });
            }
            batch += 1;
            let k = step.min(want - have - kept);
            let (ok, failed) = match self.options.order {
                Order::StartFirst => {
                    self.reporter
                        .report(EventKind::Batch {
                            batch,
                            replaced: have,
                            replicas: want,
                            containers: k,
                        })
                        .await;
                    let (ok, failed) = self.bring_in(k, &readiness).await?;
                    // Each success retires one old container; each failure keeps one
                    // (for `continue`, it stays for good).
                    let n = (ok as usize).min(old.len());
                    let retiring: Vec<Observed> = old.drain(..n).collect();
                    self.retire_all(&retiring).await;
                    (ok, failed)
                }
                Order::StopFirst => {
                    let k = k.min(self.options.max_unavailable.max(1));
                    self.reporter
                        .report(EventKind::Batch {
                            batch,
                            replaced: have,
                            replicas: want,
                            containers: k,
                        })
                        .await;
                    let n = (k as usize).min(old.len());
                    let retiring: Vec<Observed> = old.drain(..n).collect();
                    self.retire_all(&retiring).await;
                    let (ok, failed) = self.bring_in(k, &readiness).await?;
                    if failed > 0
                        && self.options.failure_action != FailureAction::Rollback
                        && !self.interrupted()
                    {
                        self.restore_slots(failed).await?;
                    }
                    (ok, failed)
                }
            };
            have += ok;
            failures += failed;
            if failed > 0 {
                healthy = false;
            }
            self.reporter.counts(have, failures).await;
            if self.interrupted() {
                return Ok(RunReport {
                    end: RunEnd::Interrupted,
                    replaced: have,
                    failures,
                    healthy,
                });
            }
            if failed > 0 && failures > allowed {
                let reason = format!(
                    "{failures} new container(s) failed; max_failure_ratio {} allows {allowed} of {want}",
                    self.options.max_failure_ratio
                );
                self.reporter
                    .report(EventKind::FailureAction {
                        action: self.options.failure_action.as_str().to_string(),
                        failures,
                        allowed,
                    })
                    .await;
                match self.options.failure_action {
                    FailureAction::Rollback => {
                        return Ok(RunReport {
                            end: RunEnd::Failed { reason },
                            replaced: have,
                            failures,
                            healthy,
                        })
                    }
                    FailureAction::Pause => {
                        return Ok(RunReport {
                            end: RunEnd::Paused { reason },
                            replaced: have,
                            failures,
                            healthy,
                        })
                    }
                    FailureAction::Continue => {}
                }
            }
            if failed > 0 {
                // These slots keep their old container (start-first), or were
                // restored with the previous revision (stop-first).
                kept += failed;
                if self.options.order == Order::StartFirst {
                    let n = (failed as usize).min(old.len());
                    old.drain(..n);
                }
            }
            if !self.options.delay.is_zero() && have + kept < want {
                tokio::time::sleep(self.options.delay).await;
            }
        }
        Ok(RunReport {
            end: RunEnd::Completed { kept },
            replaced: have,
            failures,
            healthy,
        })
    }

    /// Creates, starts, readies, joins and monitors `k` new containers.
    /// Returns (succeeded, failed).
    async fn bring_in(
        &mut self,
        k: u32,
        readiness: &ReadinessPlan,
    ) -> Result<(u32, u32), RolloutError> {
        let began = Instant::now();
        let mut news = Vec::new();
        let mut failed = 0u32;
        let numbers = self.free_numbers(k).await?;
        let created = futures_util::future::join_all(numbers.iter().map(|n| self.create(*n))).await;
        for (number, result) in numbers.into_iter().zip(created) {
            match result {
                Ok(new) => news.push(new),
                Err(reason) => {
                    failed += 1;
                    self.reporter
                        .report(EventKind::ContainerFailed {
                            container: format!("{}-{}-{number}", self.project.name, self.service()),
                            reason,
                        })
                        .await;
                }
            }
        }
        // Ready, all at once.
        let mut checkers = Vec::new();
        for new in &news {
            let observed = containers::inspect(self.engine, &new.id).await?;
            let checker = readiness
                .checker(self.engine, &observed)
                .await
                .map_err(|e| RolloutError::Service {
                    service: self.service().to_string(),
                    message: e.to_string(),
                })?;
            checkers.push(checker);
        }
        let deadline = self.options.progress_deadline;
        let waits = checkers.iter_mut().map(|c| {
            let mut cancel = self.cancel.clone();
            let engine = self.engine;
            async move { c.wait_ready(engine, deadline, &mut cancel).await }
        });
        let results = futures_util::future::join_all(waits).await;
        let mut ready: Vec<(New, Checker)> = Vec::new();
        for ((new, checker), result) in news.into_iter().zip(checkers).zip(results) {
            match result {
                Ok(detail) => {
                    self.reporter
                        .report(EventKind::Ready {
                            container: new.name.clone(),
                            after_ms: began.elapsed().as_millis() as u64,
                            detail,
                        })
                        .await;
                    ready.push((new, checker));
                }
                Err(reason) => {
                    let interrupted = reason == NotReady::Interrupted;
                    if !interrupted {
                        failed += 1;
                        self.reporter
                            .report(EventKind::ContainerFailed {
                                container: new.name.clone(),
                                reason: reason.to_string(),
                            })
                            .await;
                    }
                    let why = if interrupted {
                        "interrupted before it was ready"
                    } else {
                        "did not become ready"
                    };
                    self.take_out(&new.id, &new.name, &[], false, why).await;
                }
            }
        }
        if self.interrupted() {
            for (new, _) in ready {
                self.take_out(
                    &new.id,
                    &new.name,
                    &[],
                    false,
                    "interrupted before it joined",
                )
                .await;
            }
            return Ok((0, failed));
        }
        // Join the service name.
        let mut joined: Vec<(New, Checker)> = Vec::new();
        for (mut new, checker) in ready {
            match containers::join(self.engine, &new.id, &new.endpoints).await {
                Ok(address) => {
                    new.joined = true;
                    self.reporter
                        .report(EventKind::Joined {
                            container: new.name.clone(),
                            address,
                        })
                        .await;
                    joined.push((new, checker));
                }
                Err(e) => {
                    failed += 1;
                    self.reporter
                        .report(EventKind::ContainerFailed {
                            container: new.name.clone(),
                            reason: format!("could not join the service name: {e}"),
                        })
                        .await;
                    let nets: Vec<String> = new.endpoints.iter().map(|(n, _)| n.clone()).collect();
                    self.take_out(&new.id, &new.name, &nets, true, "could not join")
                        .await;
                }
            }
        }
        // Monitor, all at once.
        let window = self.options.monitor;
        let monitors = joined.iter_mut().map(|(_, c)| {
            let mut cancel = self.cancel.clone();
            let engine = self.engine;
            async move { c.monitor(engine, window, &mut cancel).await }
        });
        let results = futures_util::future::join_all(monitors).await;
        let mut ok = 0u32;
        for ((new, _), result) in joined.into_iter().zip(results) {
            let nets: Vec<String> = new.endpoints.iter().map(|(n, _)| n.clone()).collect();
            match result {
                Ok(()) => {
                    ok += 1;
                    self.reporter
                        .report(EventKind::Monitored {
                            container: new.name.clone(),
                            monitor_ms: window.as_millis() as u64,
                        })
                        .await;
                }
                Err(NotReady::Interrupted) => {
                    self.take_out(
                        &new.id,
                        &new.name,
                        &nets,
                        true,
                        "interrupted in its monitor window",
                    )
                    .await;
                }
                Err(reason) => {
                    failed += 1;
                    self.reporter
                        .report(EventKind::ContainerFailed {
                            container: new.name.clone(),
                            reason: format!("during the monitor window: {reason}"),
                        })
                        .await;
                    self.take_out(
                        &new.id,
                        &new.name,
                        &nets,
                        true,
                        "failed in its monitor window",
                    )
                    .await;
                }
            }
        }
        Ok((ok, failed))
    }

    /// The `k` lowest container numbers no container of the service uses.
    async fn free_numbers(&self, k: u32) -> Result<Vec<u32>, RolloutError> {
        let used: std::collections::BTreeSet<u32> = self
            .engine
            .list_project_containers(&self.project.name, Some(self.service()))
            .await?
            .into_iter()
            .map(|c| c.number)
            .collect();
        Ok((1..)
            .filter(|n| !used.contains(n))
            .take(k as usize)
            .collect())
    }

    async fn create(&self, number: u32) -> Result<New, String> {
        let mut spec = translate::container_spec(self.project, &self.target.spec, number)
            .map_err(|e| e.to_string())?;
        if let Some(labels) = spec.body.labels.as_mut() {
            labels.insert(REVISION_LABEL.to_string(), self.target.revision.to_string());
        }
        // `network_mode: service:X`: X's current container, not `X-1`.
        let namespace = self
            .engine
            .shared_namespace(&self.project.name, self.target.spec.network_mode.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(mode) = namespace {
            spec.body.host_config.get_or_insert_default().network_mode = Some(mode);
        }
        let full = endpoints(&spec);
        let spec = without_aliases(spec);
        let id = self
            .engine
            .create_container(
                &spec.name,
                spec.body,
                &spec.extra_networks,
                spec.platform.as_deref(),
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Err(e) = self.engine.inject_files(&id, &spec.files).await {
            let _ = self.engine.remove_container(&id, true).await;
            return Err(e.to_string());
        }
        self.reporter
            .report(EventKind::Created {
                container: spec.name.clone(),
                number,
            })
            .await;
        if let Err(e) = self.engine.start_container(&id).await {
            let _ = self.engine.remove_container(&id, true).await;
            return Err(format!("start: {e}"));
        }
        Ok(New {
            id,
            name: spec.name,
            endpoints: full,
            joined: false,
        })
    }

    /// stop-first: refills `n` slots whose new container failed with the previous revision.
    async fn restore_slots(&mut self, n: u32) -> Result<(), RolloutError> {
        let Some(fallback) = self.fallback.clone() else {
            self.reporter
                .warn(format!(
                    "{n} slot(s) stay empty: there is no earlier revision to restore them with"
                ))
                .await;
            return Ok(());
        };
        self.reporter
            .warn(format!(
                "restoring {n} slot(s) with revision {}",
                fallback.revision
            ))
            .await;
        let image = fallback.spec.image.clone().unwrap_or_default();
        let readiness = ReadinessPlan::new(
            &fallback.spec,
            self.settings,
            image_health(self.engine, &image).await,
        );
        let saved = std::mem::replace(&mut self.target, fallback);
        let result = self.bring_in(n, &readiness).await;
        self.target = saved;
        let (_, failed) = result?;
        if failed > 0 {
            self.reporter
                .warn(format!("{failed} slot(s) could not be restored"))
                .await;
        }
        Ok(())
    }

    /// Removes a new container (leaving the service name first when it had joined).
    async fn take_out(&self, id: &str, name: &str, networks: &[String], joined: bool, why: &str) {
        if joined && !networks.is_empty() {
            if let Err(e) = containers::unpublish(self.engine, id, networks).await {
                tracing::warn!(container = %name, error = %e, "cannot leave the service name");
            }
        }
        if let Err(e) = self.remove(id, name, why).await {
            tracing::warn!(container = %name, error = %e, "cannot remove");
        }
    }

    async fn remove(&self, id: &str, name: &str, why: &str) -> Result<(), RolloutError> {
        self.engine.remove_container(id, true).await?;
        self.reporter
            .report(EventKind::Removed {
                container: name.to_string(),
                why: why.to_string(),
            })
            .await;
        Ok(())
    }

    /// Retires old containers at once: pre-stop hook, leave the service name,
    /// drain, stop with their stop_grace_period, remove. Failures are logged;
    /// a container that cannot be stopped is removed by force.
    async fn retire_all(&self, old: &[Observed]) {
        let jobs = old.iter().map(|c| self.retire(c));
        futures_util::future::join_all(jobs).await;
    }

    async fn retire(&self, c: &Observed) {
        if let Some(hook) = &self.options.pre_stop {
            let result = self.pre_stop(hook, c).await;
            self.reporter
                .report(EventKind::PreStop {
                    container: c.name.clone(),
                    result,
                })
                .await;
        }
        // Leave the name wherever the container holds it (an old container
        // may sit on networks an earlier revision declared).
        let held = c.aliased_networks(self.service());
        if !held.is_empty() {
            if let Err(e) = containers::unpublish(self.engine, &c.id, &held).await {
                self.reporter
                    .warn(format!("{}: could not leave the service name: {e}", c.name))
                    .await;
            }
        }
        self.reporter
            .report(EventKind::Unpublished {
                container: c.name.clone(),
                drain_ms: self.options.drain.as_millis() as u64,
            })
            .await;
        tokio::time::sleep(self.options.drain).await;
        if let Err(e) = self.engine.stop_container(&c.id, None).await {
            self.reporter
                .warn(format!("{}: stop failed ({e}); removing by force", c.name))
                .await;
        } else {
            self.reporter
                .report(EventKind::Stopped {
                    container: c.name.clone(),
                })
                .await;
        }
        if let Err(e) = self.remove(&c.id, &c.name, "replaced").await {
            self.reporter
                .warn(format!("{}: could not be removed: {e}", c.name))
                .await;
        }
    }

    async fn pre_stop(&self, hook: &PreStop, c: &Observed) -> String {
        let ip = c.address(None).unwrap_or_default();
        let fill = |text: &str| {
            text.replace("{container}", &c.name)
                .replace("{id}", &c.id)
                .replace("{ip}", &ip)
                .replace("{service}", self.service())
                .replace("{number}", &c.number.to_string())
        };
        let timeout = self
            .target
            .spec
            .stop_grace_period
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_secs(1));
        match hook {
            PreStop::Http { method, url } => {
                let url = fill(url);
                match super::prestop::http_call(method, &url, timeout).await {
                    Ok(status) => format!("{method} {url}: HTTP {status}"),
                    Err(e) => format!("{method} {url} failed: {e} (going on)"),
                }
            }
            PreStop::Exec { command } => {
                let command = fill(command);
                let env = vec![
                    format!("MUSTER_CONTAINER={}", c.name),
                    format!("MUSTER_SERVICE={}", self.service()),
                ];
                match containers::exec_shell(self.engine, &c.id, &command, env, timeout).await {
                    Ok((0, _)) => format!("{command:?} exited 0"),
                    Ok((code, out)) => format!("{command:?} exited {code}: {out} (going on)"),
                    Err(e) => format!("{command:?}: {e} (going on)"),
                }
            }
        }
    }
}
