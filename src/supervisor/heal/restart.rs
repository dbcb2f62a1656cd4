//! Decisions, triggers and restarts: a probe's restart decision or an
//! unready service becomes a restart after the backoff (or a failure once
//! the budget is spent); restarts run on their own task and report back;
//! `depends_on: {restart: true}` dependents follow once their condition holds.

use super::notify::Extra;
use super::*;

impl Healer {
    pub(super) fn on_decision(&mut self, d: ServiceDecision) {
        let crate::supervisor::machine::Decision::Restart { reason } = d.decision;
        if self.is_paused(&d.service) {
            tracing::info!(service = %d.service, reason = %reason, "paused: probe gave up, not restarting");
            return;
        }
        if self.act_unhealthy(&d.service, &reason) {
            return;
        }
        let Some(svc) = self.services.get(&d.service) else {
            return;
        };
        if !svc.settings.on_liveness || svc.settings.budget == 0 {
            let why = if svc.settings.budget == 0 {
                "restart.budget is 0"
            } else {
                "restart.on_liveness is off"
            };
            let text = format!("{reason}; muster does not restart it ({why})");
            tracing::error!(service = %d.service, reason = %text, "probe gave up on the service");
            if let Some(svc) = self.services.get_mut(&d.service) {
                svc.status.alert = Some(text.clone());
                svc.troubled = true;
            }
            self.notify(&d.service, NotifyEvent::Failed, &text, Extra::default());
            return;
        }
        self.request_restart(&d.service, Trigger::Liveness, reason);
    }

    pub(super) fn running_ids(&self, service: &str) -> Vec<String> {
        let mut ids: Vec<(&u32, &String)> = self
            .containers
            .iter()
            .filter(|(_, c)| c.service == service && c.running)
            .map(|(id, c)| (&c.number, id))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id.clone()).collect()
    }

    pub(super) fn container_names(&self, service: &str) -> Vec<String> {
        let mut names: Vec<(u32, String)> = self
            .containers
            .values()
            .filter(|c| c.service == service)
            .map(|c| (c.number, c.name.clone()))
            .collect();
        names.sort();
        names.into_iter().map(|(_, n)| n).collect()
    }

    /// Schedules a restart after the backoff, or gives up when the budget is spent.
    pub(super) fn request_restart(&mut self, service: &str, trigger: Trigger, reason: String) {
        if !matches!(trigger, Trigger::Dependency(_) | Trigger::Replica(_))
            && !self.is_paused(service)
            && self.act_unhealthy(service, &reason)
        {
            return;
        }
        let running = !self.running_ids(service).is_empty();
        let now = now_ms();
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        if svc.status.paused.is_some() {
            tracing::debug!(service = %service, reason = %reason, "paused; not restarting");
            return;
        }
        if svc.gave_up {
            tracing::debug!(service = %service, "restart budget already spent; not restarting");
            return;
        }
        if svc.pending.is_some() || svc.in_flight.is_some() {
            return;
        }
        if !running {
            tracing::debug!(service = %service, "no running container; left to the restart policy");
            return;
        }
        let replica = matches!(trigger, Trigger::Replica(_));
        match svc.budget.check(&svc.settings, now) {
            Verdict::Disabled | Verdict::Exhausted { .. } if replica => {
                // The service still serves on its other replicas: an alert,
                // not `failed`.
                let text =
                    format!("{reason}; muster does not start it again (restart budget spent or 0)");
                tracing::error!(service = %service, alert = %text, "replica left down");
                svc.status.alert = Some(text);
                svc.replica_alert = true;
            }
            Verdict::Disabled => {
                tracing::info!(service = %service, reason = %reason, "muster does not restart this service (restart.budget is 0)");
            }
            Verdict::Exhausted { used } => {
                svc.gave_up = true;
                svc.troubled = true;
                let text = format!(
                    "restart budget exhausted: {used} restarts in {}; muster stopped restarting it (last problem: {reason})",
                    fmt(svc.settings.window)
                );
                svc.status.alert = Some(text.clone());
                tracing::error!(service = %service, alert = %text, "service failed");
                self.write_state(service, super::engine_view::Written::GaveUp, &text);
                self.notify(service, NotifyEvent::Failed, &text, Extra::default());
            }
            Verdict::Restart { delay, attempt } => {
                tracing::warn!(service = %service, reason = %reason, delay = %fmt(delay), attempt, budget = svc.settings.budget, window = %fmt(svc.settings.window), "restarting after the backoff");
                svc.status.next_restart_ms = Some(now + delay.as_millis() as u64);
                svc.status.next_delay_ms = Some(delay.as_millis() as u64);
                svc.pending = Some(Pending {
                    due: Instant::now() + delay,
                    delay,
                    reason,
                    trigger,
                });
            }
        }
    }

    pub(super) fn on_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .services
            .values()
            .filter(|s| s.pending.as_ref().is_some_and(|p| p.due <= now))
            .map(|s| s.name.clone())
            .collect();
        let snap = self.store.snapshot();
        let degraded = degraded(&snap);
        for name in due {
            let Some(p) = self.services.get_mut(&name).and_then(|s| s.pending.take()) else {
                continue;
            };
            if let Some(svc) = self.services.get_mut(&name) {
                svc.status.next_restart_ms = None;
                svc.status.next_delay_ms = None;
            }
            let state = snap.services.get(&name).map(|s| s.state);
            if p.trigger == Trigger::Unready && state == Some(ServiceState::Ready) {
                tracing::info!(service = %name, "ready again before its restart; restart cancelled");
                continue;
            }
            if p.trigger == Trigger::Unready && degraded.contains_key(&name) {
                // A dependency went down meanwhile: decided again by on_snapshot.
                if let Some(svc) = self.services.get_mut(&name) {
                    svc.acted_unready_since = None;
                }
                continue;
            }
            if let Trigger::Replica(id) = &p.trigger {
                if self.containers.get(id).is_none_or(|c| c.running) {
                    tracing::info!(service = %name, "replica runs again or is gone; its start is cancelled");
                    continue;
                }
            } else if self.running_ids(&name).is_empty() {
                tracing::info!(service = %name, "no running container any more; restart cancelled");
                continue;
            }
            self.execute(&name, p.trigger, p.reason, Some(p.delay));
        }
    }

    /// Restarts every container of `service` now (on another task).
    pub(super) fn execute(
        &mut self,
        service: &str,
        trigger: Trigger,
        reason: String,
        backoff: Option<Duration>,
    ) {
        let ids: Vec<String> = match trigger {
            // A dependency restart also starts a dependent that is not running.
            Trigger::Dependency(_) => {
                let mut all: Vec<(u32, String)> = self
                    .containers
                    .iter()
                    .filter(|(_, c)| c.service == service)
                    .map(|(id, c)| (c.number, id.clone()))
                    .collect();
                all.sort();
                all.into_iter().map(|(_, id)| id).collect()
            }
            Trigger::Replica(ref id) => vec![id.clone()],
            _ => self.running_ids(service),
        };
        if ids.is_empty() {
            return;
        }
        let replica = matches!(trigger, Trigger::Replica(_));
        let names = if replica {
            ids.iter()
                .filter_map(|id| self.containers.get(id).map(|c| c.name.clone()))
                .collect()
        } else {
            self.container_names(service)
        };
        let now = now_ms();
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        let (by, attempt) = match &trigger {
            Trigger::Dependency(_) => (RestartBy::Dependency, None),
            _ => {
                svc.budget.record(now, svc.settings.window);
                let used = svc.budget.used(&svc.settings, now);
                (RestartBy::Muster, Some(used))
            }
        };
        svc.status.budget_used = svc.budget.used(&svc.settings, now);
        svc.in_flight = Some(InFlight {
            reason: reason.clone(),
            by,
            attempt,
            backoff,
            began_ms: now,
            // A replica's start is not announced: the service did not go down.
            announced: replica,
            containers: names,
            replica,
        });
        let grace = svc.stop_grace;
        svc.status.restarting = true;
        // Published before the engine is asked, so that `up` (which follows
        // the same containers) reads the coming exit as a restart.
        let heal = svc.status.clone();
        self.writes.status(service, StatusWrite::Heal(heal));
        tracing::warn!(service = %service, by = by.as_str(), reason = %reason, attempt = ?attempt, "restarting the service's containers");
        let started = Instant::now();
        for id in &ids {
            if let Some(c) = self.containers.get_mut(id) {
                c.muster_restart = Some(started);
                c.stop_requested = false;
            }
        }
        let engine = self.engine.clone();
        let done = self.done_tx.clone();
        let service = service.to_string();
        tokio::spawn(async move {
            let result = restart_containers(&engine, &ids, grace).await;
            let _ = done.send(Done { service, result });
        });
    }

    pub(super) fn on_done(&mut self, done: Done) {
        let Some(fl) = self.services.get_mut(&done.service).and_then(|s| {
            s.status.restarting = false;
            s.in_flight.take()
        }) else {
            return;
        };
        let service = done.service;
        let at = now_ms();
        match done.result {
            Ok(()) => {
                if !fl.announced {
                    self.announce_restart(&service);
                }
                let Some(svc) = self.services.get_mut(&service) else {
                    return;
                };
                svc.status.muster_restarts = svc.status.muster_restarts.saturating_add(1);
                svc.status.last_restart = Some(RestartNote {
                    at_ms: at,
                    by: fl.by.as_str().to_string(),
                    reason: fl.reason.clone(),
                    backoff_ms: fl.backoff.map(|d| d.as_millis() as u64),
                });
                svc.troubled |= !fl.replica;
                let hook = svc.settings.hook.clone().map(|command| hook::HookRun {
                    command,
                    timeout: svc.settings.hook_timeout,
                    project: self.project.clone(),
                    service: service.clone(),
                    containers: fl.containers.clone(),
                    container_ids: Vec::new(),
                    reason: fl.reason.clone(),
                    by: fl.by.as_str().to_string(),
                    restarts: svc.status.muster_restarts,
                    dir: Some(self.working_dir.clone()),
                });
                tracing::warn!(service = %service, by = fl.by.as_str(), reason = %fl.reason, restarts = svc.status.muster_restarts, "service restarted");
                let record = RestartRecord {
                    at_ms: at,
                    by: fl.by,
                    reason: fl.reason.clone(),
                    containers: fl.containers.clone(),
                };
                self.record(&service, record);
                if let Some(mut hook) = hook {
                    hook.container_ids = self.running_ids(&service);
                    hook::spawn(hook);
                }
                self.notify_restart(
                    &service,
                    &fl.reason,
                    Extra {
                        by: Some(fl.by),
                        attempt: fl.attempt,
                        backoff: fl.backoff,
                        error: None,
                    },
                );
                if fl.replica {
                    self.replica_back(&service);
                } else {
                    self.restart_dependents(&service, fl.began_ms);
                }
            }
            Err(e) => {
                for c in self.containers.values_mut() {
                    if c.service == service {
                        c.muster_restart = None;
                    }
                }
                let text = format!("restart failed: {e}");
                tracing::error!(service = %service, error = %e, "the engine refused the restart");
                if let Some(svc) = self.services.get_mut(&service) {
                    svc.status.alert = Some(text.clone());
                    svc.troubled = true;
                }
                self.notify_restart(
                    &service,
                    &fl.reason,
                    Extra {
                        by: Some(fl.by),
                        attempt: fl.attempt,
                        backoff: fl.backoff,
                        error: Some(e),
                    },
                );
            }
        }
    }

    /// After `service` was restarted: its `restart: true` dependents wait for
    /// their condition on it, then restart.
    pub(super) fn restart_dependents(&mut self, service: &str, after_ms: u64) {
        let dependents = self
            .services
            .get(service)
            .map(|s| s.restart_dependents.clone())
            .unwrap_or_default();
        for (dependent, condition) in dependents {
            let has_containers = self.containers.values().any(|c| c.service == dependent);
            let Some(d) = self.services.get_mut(&dependent) else {
                continue;
            };
            if !has_containers {
                continue;
            }
            tracing::info!(service = %dependent, dependency = %service, "dependency was restarted; restarting this service once the dependency's condition holds (depends_on restart: true)");
            d.wait_dep = Some(WaitDep {
                dependency: service.to_string(),
                condition,
                after_ms,
            });
        }
    }

    /// Dependents whose dependency's condition holds again are restarted.
    pub(super) fn check_waits(&mut self, snap: &crate::supervisor::state::StackSnapshot) {
        let ready: Vec<(String, String)> = self
            .services
            .values()
            .filter_map(|s| s.wait_dep.as_ref().map(|w| (s.name.clone(), w.clone())))
            .filter(|(_, w)| {
                let dep = snap.services.get(&w.dependency);
                let dep_state = dep.map(|s| s.state);
                // Reached again since the restart began (not a stale state from before it).
                let fresh = dep.is_some_and(|s| s.since_ms >= w.after_ms);
                let dep_busy = self
                    .services
                    .get(&w.dependency)
                    .is_some_and(|s| s.in_flight.is_some());
                if dep_busy {
                    return false;
                }
                match w.condition {
                    Condition::ServiceStarted => self
                        .containers
                        .values()
                        .any(|c| c.service == w.dependency && c.running),
                    Condition::ServiceHealthy => dep_state == Some(ServiceState::Ready) && fresh,
                    Condition::ServiceCompletedSuccessfully => {
                        dep_state == Some(ServiceState::Completed) && fresh
                    }
                }
            })
            .map(|(name, w)| (name, w.dependency))
            .collect();
        for (name, dependency) in ready {
            let Some(svc) = self.services.get_mut(&name) else {
                continue;
            };
            svc.wait_dep = None;
            if svc.in_flight.is_some() {
                continue;
            }
            svc.pending = None;
            svc.status.next_restart_ms = None;
            svc.status.next_delay_ms = None;
            self.execute(
                &name,
                Trigger::Dependency(dependency.clone()),
                format!("its dependency {dependency} was restarted (depends_on restart: true)"),
                None,
            );
        }
    }
}

/// Restarts containers through the Engine API (stop with `stop_grace`, then start).
pub(super) async fn restart_containers(
    engine: &Engine,
    ids: &[String],
    stop_grace: Option<Duration>,
) -> Result<(), String> {
    let options = RestartContainerOptions {
        t: stop_grace.map(|d| d.as_secs().min(i32::MAX as u64) as i32),
        signal: None,
    };
    let limit = stop_grace.unwrap_or(Duration::from_secs(10)) + Duration::from_secs(60);
    let calls = ids.iter().map(|id| {
        let options = options.clone();
        async move {
            tokio::time::timeout(limit, engine.docker().restart_container(id, Some(options)))
                .await
                .map_err(|_| format!("restart {id}: no answer within {}", fmt(limit)))?
                .map_err(|e| format!("restart {id}: {e}"))
        }
    });
    let errors: Vec<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
