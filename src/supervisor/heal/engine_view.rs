//! The healer's view of the engine: containers as the engine event stream
//! and resyncs report them, and what each start, exit, stop, removal or
//! healthcheck change means for the service (a first start, a restart by the
//! engine or by someone else, a failure under the restart policy).

use super::notify::Extra;
use super::*;
use crate::engine::{Action, Health};

impl Healer {
    pub(super) fn on_engine(&mut self, msg: EngineMsg) {
        match msg {
            EngineMsg::Resync {
                containers,
                reconnect,
            } => self.on_resync(containers, reconnect),
            EngineMsg::Event { event, state } => self.on_event(event, state.map(|s| *s)),
            EngineMsg::Down { error, retry_in } => {
                tracing::warn!(error = %error, retry_in = %fmt(retry_in), "engine event stream lost; reconnecting");
                self.update_link(|l| {
                    l.connected = false;
                    l.since_ms = now_ms();
                    l.last_error = Some(error);
                });
            }
        }
    }

    pub(super) fn on_resync(&mut self, list: Vec<ContainerState>, reconnect: bool) {
        let first = !self.synced;
        self.synced = true;
        let mut seen = BTreeSet::new();
        for state in list {
            if !self.services.contains_key(&state.service) {
                continue;
            }
            seen.insert(state.id.clone());
            let Some(old) = self.containers.get(&state.id).cloned() else {
                let c = Ctr::from_state(&state);
                let running = c.running;
                let service = c.service.clone();
                self.containers.insert(state.id.clone(), c);
                if !first && running {
                    // Created and started while muster was not listening.
                    self.first_start(&service);
                }
                continue;
            };
            let service = old.service.clone();
            let restarted_by_engine = state.restart_count.saturating_sub(old.restart_count);
            let started_again = state.started_ns.is_some()
                && state.started_ns != old.started_ns
                && old.ever_started;
            let ours = old.muster_restart.is_some();
            if let Some(c) = self.containers.get_mut(&state.id) {
                c.running = state.running;
                c.ever_started |= state.started_ns.is_some();
                c.restart_count = state.restart_count;
                c.started_ns = state.started_ns;
                c.oom = state.oom_killed;
                if ours
                    && c.muster_restart
                        .is_some_and(|t| t.elapsed() > Duration::from_secs(120))
                {
                    c.muster_restart = None;
                }
            }
            if restarted_by_engine > 0 {
                self.observe_restart(
                    &service,
                    RestartBy::Engine,
                    restarted_by_engine,
                    "restarted by the engine's restart policy while muster was not listening"
                        .into(),
                    state.running,
                );
            } else if started_again && !ours && state.running {
                self.observe_restart(
                    &service,
                    RestartBy::External,
                    1,
                    "started again while muster was not listening".into(),
                    true,
                );
            } else if ours && state.running && started_again {
                self.muster_container_started(&state.id);
            }
            if old.running && !state.running && !ours {
                // Died while muster was not listening.
                let code = state.exit_code.unwrap_or(-1);
                let policy = self
                    .services
                    .get(&service)
                    .map(|s| s.policy.clone())
                    .unwrap_or_default();
                let restarting = engine_restarts_it(&policy, code, old.restart_count, Some(&state));
                self.handle_exit(&state.id, code, restarting, state.oom_killed);
            }
        }
        let gone: Vec<String> = self
            .containers
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.destroyed(&id);
        }
        for svc in self.services.values_mut() {
            svc.status.engine_restarts = self
                .containers
                .values()
                .filter(|c| c.service == svc.name)
                .map(|c| c.restart_count)
                .sum();
        }
        let count = self.containers.len();
        if reconnect {
            // At the level of the loss, so a log that shows one shows the other.
            tracing::warn!(
                containers = count,
                "engine event stream reconnected; view rebuilt from container labels"
            );
        } else {
            tracing::debug!(
                containers = count,
                "engine view built from container labels"
            );
        }
        self.update_link(|l| {
            l.connected = true;
            l.since_ms = now_ms();
            if reconnect {
                l.reconnects += 1;
            }
        });
    }

    /// Changes the engine link, which lives in the snapshot (`/status`;
    /// followers watch the store).
    pub(super) fn update_link(&mut self, change: impl FnOnce(&mut EngineLink)) {
        let mut link = self.store.snapshot().engine.clone().unwrap_or_default();
        change(&mut link);
        self.store.set_engine_link(link);
    }

    pub(super) fn on_event(&mut self, ev: EngineEvent, state: Option<ContainerState>) {
        let service = if ev.service.is_empty() {
            state
                .as_ref()
                .map(|s| s.service.clone())
                .unwrap_or_default()
        } else {
            ev.service.clone()
        };
        if !self.services.contains_key(&service) {
            return;
        }
        let id = ev.container_id.clone();
        if !self.containers.contains_key(&id) {
            if ev.action == Action::Destroy {
                return;
            }
            let mut c = match &state {
                Some(s) => Ctr::from_state(s),
                None => Ctr {
                    name: id.chars().take(12).collect(),
                    service: service.clone(),
                    number: 0,
                    running: false,
                    ever_started: false,
                    restart_count: 0,
                    started_ns: None,
                    muster_restart: None,
                    stop_requested: false,
                    oom: false,
                    oom_kills: 0,
                    has_healthcheck: false,
                    hard_kill: false,
                    image: None,
                    down: None,
                    since_ms: now_ms(),
                },
            };
            // Seen first through this event: its state is what the event says.
            c.running = false;
            c.ever_started = false;
            c.restart_count = state.as_ref().map(|s| s.restart_count).unwrap_or(0);
            self.containers.insert(id.clone(), c);
        }
        if let (Some(s), Some(c)) = (&state, self.containers.get_mut(&id)) {
            c.name.clone_from(&s.name);
            c.number = s.number;
            c.has_healthcheck = s.has_healthcheck;
            if s.image.is_some() {
                c.image.clone_from(&s.image);
            }
        }
        match ev.action {
            Action::Start => self.on_start(&id, state),
            Action::Kill => {
                if let Some(c) = self.containers.get_mut(&id) {
                    if c.muster_restart.is_none() && c.running {
                        if !c.stop_requested {
                            // `docker stop` sends the stop signal first (and
                            // SIGKILL only after its timeout); `docker kill`
                            // sends SIGKILL alone.
                            c.hard_kill = ev.signal == Some(9);
                        }
                        c.stop_requested = true;
                    }
                }
            }
            Action::Oom => {
                if let Some(c) = self.containers.get_mut(&id) {
                    c.oom = true;
                    c.oom_kills += 1;
                }
            }
            Action::Die => {
                let Some(c) = self.containers.get_mut(&id) else {
                    return;
                };
                if !c.running {
                    return; // already known (replayed after a reconnect)
                }
                c.running = false;
                if c.muster_restart.is_some() {
                    return;
                }
                let stop_requested = std::mem::take(&mut c.stop_requested);
                let oom_event = std::mem::take(&mut c.oom);
                let oom = oom_event || state.as_ref().is_some_and(|s| s.oom_killed);
                if oom && !oom_event {
                    // Killed for memory, and the `oom` event was missed.
                    c.oom_kills += 1;
                }
                let code = ev.exit_code.unwrap_or(-1);
                let count_before = c.restart_count;
                let hard_kill = std::mem::take(&mut c.hard_kill);
                if stop_requested && !oom {
                    if self.replica_stopped(&id, code, hard_kill) {
                        return;
                    }
                    self.stopped(&id);
                } else {
                    let policy = self
                        .services
                        .get(&service)
                        .map(|s| s.policy.clone())
                        .unwrap_or_default();
                    let restarting =
                        engine_restarts_it(&policy, code, count_before, state.as_ref());
                    self.handle_exit(&id, code, restarting, oom);
                }
            }
            Action::Destroy => self.destroyed(&id),
            Action::HealthStatus => {
                let health = ev
                    .health
                    .clone()
                    .or_else(|| state.as_ref().and_then(|s| s.health.clone()));
                self.on_health(&service, health.as_ref());
            }
            _ => {}
        }
    }

    pub(super) fn on_start(&mut self, id: &str, state: Option<ContainerState>) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        if c.running {
            return; // replayed, or already seen through a resync
        }
        c.running = true;
        c.stop_requested = false;
        let was_started = c.ever_started;
        c.ever_started = true;
        let previous_count = c.restart_count;
        if let Some(s) = &state {
            c.restart_count = s.restart_count;
            c.started_ns = s.started_ns;
        }
        c.since_ms = now_ms();
        c.hard_kill = false;
        let was_down = c.down.take();
        let service = c.service.clone();
        if c.muster_restart.is_some() {
            self.muster_container_started(id);
            self.replica_back(&service);
            return;
        }
        if self.replica_started(id, was_started, was_down, state.as_ref(), previous_count) {
            return;
        }
        let by_engine = state
            .as_ref()
            .map(|s| s.restart_count.saturating_sub(previous_count))
            .unwrap_or(0);
        if by_engine > 0 {
            if let Some(svc) = self.services.get_mut(&service) {
                svc.status.engine_restarts = svc.status.engine_restarts.saturating_add(by_engine);
            }
            let policy = self
                .services
                .get(&service)
                .map(|s| s.policy.clone())
                .unwrap_or_default();
            self.observe_restart(
                &service,
                RestartBy::Engine,
                0,
                format!("restarted by the engine (restart: {policy})"),
                true,
            );
        } else if !was_started {
            if self.following {
                self.first_start(&service);
            }
        } else if self.following {
            self.observe_restart(
                &service,
                RestartBy::External,
                1,
                "started again outside muster (docker start / docker restart)".into(),
                true,
            );
        }
    }

    /// A container of a service muster is restarting runs again.
    pub(super) fn muster_container_started(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        c.muster_restart = None;
        let service = c.service.clone();
        let announce = match self
            .services
            .get_mut(&service)
            .and_then(|s| s.in_flight.as_mut())
        {
            Some(fl) if !fl.announced => {
                fl.announced = true;
                true
            }
            _ => false,
        };
        if announce {
            self.announce_restart(&service);
        }
    }

    /// Tells the runner that the service's containers run again: a fresh
    /// start window from now (`Restarted` for its machine; for a service
    /// without probes, the states the engine's word means, as `Set`).
    pub(super) fn announce_restart(&mut self, service: &str) {
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        svc.seen_restarts = svc.seen_restarts.saturating_add(1);
        if svc.probed {
            let _ = self.control.send(Control::Restarted {
                service: service.to_string(),
            });
        } else if self.following {
            let restarts = svc.seen_restarts;
            let healthcheck = self.has_healthcheck(service);
            self.writes.status(service, StatusWrite::Restarts(restarts));
            self.engine_state_started(service, healthcheck, "container restarted");
        }
    }

    pub(super) fn has_healthcheck(&self, service: &str) -> bool {
        self.containers
            .values()
            .any(|c| c.service == service && c.has_healthcheck)
    }

    /// State of a service muster has no probes for, when its container starts:
    /// `starting` until the engine's healthcheck answers, or `ready` without one.
    pub(super) fn engine_state_started(&mut self, service: &str, healthcheck: bool, why: &str) {
        if healthcheck {
            self.set(
                service,
                ServiceState::Starting,
                format!("{why}; waiting for the healthcheck"),
            );
        } else {
            self.set(service, ServiceState::Starting, why.to_string());
            self.set(service, ServiceState::Ready, format!("running ({why})"));
        }
    }

    /// Moves a service without muster probes to `to`: a request to the
    /// runner, the one writer of service state ([`Control::Set`]). The
    /// state is remembered, because the store shows it only once the
    /// runner has applied it.
    pub(super) fn set(&mut self, service: &str, to: ServiceState, reason: String) {
        if let Some(svc) = self.services.get_mut(service) {
            svc.written = Some(to);
        }
        self.writes.set(service, to, reason);
    }

    /// A container that was never started before now runs.
    pub(super) fn first_start(&mut self, service: &str) {
        if !self.following {
            return;
        }
        let Some(svc) = self.services.get(service) else {
            return;
        };
        if svc.probed {
            let _ = self.control.send(Control::Started {
                service: service.to_string(),
            });
        } else {
            let healthcheck = self.has_healthcheck(service);
            self.engine_state_started(service, healthcheck, "container started");
        }
    }

    /// Someone other than muster restarted containers of `service` (`count`
    /// restarts; 0 = already counted by the caller).
    pub(super) fn observe_restart(
        &mut self,
        service: &str,
        by: RestartBy,
        count: u32,
        reason: String,
        running: bool,
    ) {
        let at = now_ms();
        if !self.count_restart(service, by, count, &reason, at) {
            return;
        }
        if let Some(svc) = self.services.get_mut(service) {
            // The engine's own restarts (a crash loop under `restart: always`) are
            // notified one by one, without a "recovered" after each.
            svc.troubled |= by != RestartBy::Engine;
        }
        if running {
            self.announce_restart(service);
        }
        self.notify_restart(
            service,
            &reason,
            Extra {
                by: Some(by),
                ..Extra::default()
            },
        );
        self.restart_dependents(service, at);
    }

    /// Counts a restart by the engine or someone else (`count`; 0 = already
    /// counted), records it as the last one and, for someone else's, in the
    /// history. False for a service muster does not know.
    pub(super) fn count_restart(
        &mut self,
        service: &str,
        by: RestartBy,
        count: u32,
        reason: &str,
        at: u64,
    ) -> bool {
        let Some(svc) = self.services.get_mut(service) else {
            return false;
        };
        match by {
            RestartBy::Engine => {
                svc.status.engine_restarts = svc.status.engine_restarts.saturating_add(count)
            }
            RestartBy::External => {
                svc.status.external_restarts = svc.status.external_restarts.saturating_add(count)
            }
            _ => {}
        }
        svc.status.last_restart = Some(RestartNote {
            at_ms: at,
            by: by.as_str().to_string(),
            reason: reason.to_string(),
            backoff_ms: None,
        });
        tracing::warn!(service = %service, by = by.as_str(), reason = %reason, "service restarted");
        if by == RestartBy::External {
            let record = RestartRecord {
                at_ms: at,
                by,
                reason: reason.to_string(),
                containers: self.container_names(service),
            };
            self.record(service, record);
        }
        true
    }

    pub(super) fn handle_exit(&mut self, id: &str, code: i64, restarting: bool, oom: bool) {
        if self.replica_exited(id, code, restarting, oom) {
            return;
        }
        let Some((service, name)) = self.note_exit(id, code, restarting, oom) else {
            return;
        };
        let oom_text = self.oom_text(id, oom);
        let Some(svc) = self.services.get_mut(&service) else {
            return;
        };
        let mut reason = format!("container {name} exited with code {code}{oom_text}");
        let one_shot = code == 0 && !restarting && !oom;
        if restarting {
            reason.push_str(&format!(
                "; the engine restarts it (restart: {})",
                svc.policy
            ));
            tracing::warn!(service = %service, container = %name, code, "container exited; the engine's restart policy restarts it");
        } else if !one_shot {
            let policy = svc.policy.clone();
            reason.push_str(&format!("; restart policy `{policy}` does not restart it"));
            tracing::error!(service = %service, container = %name, code, policy = %policy, "container exited and is not restarted");
            svc.status.alert = Some(reason.clone());
            svc.troubled = true;
        } else {
            tracing::info!(service = %service, container = %name, "container exited 0");
        }
        let probed = svc.probed;
        if probed {
            let _ = self.control.send(Control::Exited {
                service: service.clone(),
                code,
                one_shot,
                why: oom_text.clone(),
            });
        } else if self.following {
            let to = if one_shot {
                ServiceState::Completed
            } else {
                ServiceState::Failed
            };
            self.set(&service, to, reason.clone());
        }
        if !restarting && !one_shot {
            self.notify(&service, NotifyEvent::Failed, &reason, Extra::default());
        }
    }

    /// Records the exit of container `id` as its service's last one; the
    /// service and the container's name.
    pub(super) fn note_exit(
        &mut self,
        id: &str,
        code: i64,
        restarting: bool,
        oom: bool,
    ) -> Option<(String, String)> {
        let c = self.containers.get(id)?;
        let (service, name) = (c.service.clone(), c.name.clone());
        let svc = self.services.get_mut(&service)?;
        svc.status.last_exit = Some(ExitNote {
            at_ms: now_ms(),
            container: name.clone(),
            code,
            engine_restarts_it: restarting,
            oom_killed: oom,
        });
        Some((service, name))
    }

    /// A container was stopped on purpose (`docker stop`, `muster down`).
    pub(super) fn stopped(&mut self, id: &str) {
        let Some(service) = self.containers.get(id).map(|c| c.service.clone()) else {
            return;
        };
        if !self.following {
            return;
        }
        let any_running = self
            .containers
            .values()
            .any(|c| c.service == service && c.running);
        if any_running {
            return;
        }
        tracing::info!(service = %service, "containers stopped");
        self.set_stopped(&service, "container stopped");
    }

    pub(super) fn set_stopped(&mut self, service: &str, reason: &str) {
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        svc.pending = None;
        svc.wait_dep = None;
        self.write_state(service, Written::Stopped, reason);
    }

    /// Moves a service to what the healer decided, as a typed request to the
    /// runner, the one writer of service state: for a service with muster
    /// probes to its machine (`Stopped`, `GaveUp`), for one without as the
    /// state itself (`Set`).
    pub(super) fn write_state(&mut self, service: &str, to: Written, reason: &str) {
        if !self.services.get(service).is_some_and(|s| s.probed) {
            let state = match to {
                Written::Stopped => ServiceState::Stopped,
                Written::GaveUp => ServiceState::Failed,
            };
            self.set(service, state, reason.to_string());
            return;
        }
        let (service, reason) = (service.to_string(), reason.to_string());
        let _ = self.control.send(match to {
            Written::Stopped => Control::Stopped { service, reason },
            Written::GaveUp => Control::GaveUp { service, reason },
        });
    }

    pub(super) fn destroyed(&mut self, id: &str) {
        let Some(c) = self.containers.remove(id) else {
            return;
        };
        let left = self.containers.values().any(|o| o.service == c.service);
        if !left && self.following {
            // What this healer last wrote, else (the runner's machine
            // decides it, or `up` wrote it) the store's.
            let written = self.services.get(&c.service).and_then(|s| s.written);
            let state = written.or_else(|| {
                self.store
                    .snapshot()
                    .services
                    .get(&c.service)
                    .map(|s| s.state)
            });
            if state != Some(ServiceState::Stopped) {
                self.set_stopped(&c.service, "containers removed");
            }
        }
    }

    pub(super) fn on_health(&mut self, service: &str, health: Option<&Health>) {
        let Some(svc) = self.services.get(service) else {
            return;
        };
        if svc.probed || !self.following {
            return;
        }
        match health {
            Some(Health::Healthy) => self.set(service, ServiceState::Ready, "healthy".into()),
            Some(Health::Unhealthy) => self.set(
                service,
                ServiceState::Unready,
                "healthcheck reports unhealthy".into(),
            ),
            _ => {}
        }
    }
}

/// What the healer decides about a service's state itself (the rest comes
/// from the runner's probes or the engine's healthcheck).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// Its containers were stopped on purpose.
    Stopped,
    /// The restart budget is spent: `failed`.
    GaveUp,
}

impl Healer {
    /// ` (OOM-killed at 1.9 GiB of 2 GiB)` after an exit's text when the
    /// kernel killed it: the container's last resource sample (see
    /// `supervisor/telemetry.rs`), else ` (OOM-killed: out of memory)`.
    pub(super) fn oom_text(&self, id: &str, oom: bool) -> String {
        if !oom {
            return String::new();
        }
        match self.store.telemetry().last.get(id) {
            Some(usage) => format!(" ({})", usage.oom_text()),
            None => " (OOM-killed: out of memory)".to_string(),
        }
    }
}

/// Whether the engine restarts a container that just exited with `code`:
/// inspect says so (restarting, or already running again), else its restart
/// policy does (`always`, `unless-stopped`, `on-failure[:N]` under N restarts).
pub(super) fn engine_restarts_it(
    policy: &str,
    code: i64,
    restarts_before: u32,
    state: Option<&ContainerState>,
) -> bool {
    if let Some(s) = state {
        if s.restarting || s.running || s.restart_count > restarts_before {
            return true;
        }
        // Inspect ran after the engine decided: it is not restarting it.
        if s.exit_code.is_some() {
            return false;
        }
    }
    match policy.split_once(':') {
        _ if policy == "always" || policy == "unless-stopped" => true,
        Some(("on-failure", max)) => {
            code != 0 && max.parse::<u32>().map_or(true, |m| restarts_before < m)
        }
        None if policy == "on-failure" => code != 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn who_restarts_an_exited_container() {
        let state = |running, restarting, count| ContainerState {
            id: "x".into(),
            name: "p-a-1".into(),
            service: "a".into(),
            number: 1,
            running,
            restarting,
            restart_count: count,
            started_ns: Some(1),
            exit_code: (!running && !restarting).then_some(3),
            oom_killed: false,
            has_healthcheck: false,
            health: None,
            image: None,
        };
        // Inspect decides when it saw the engine's decision.
        assert!(engine_restarts_it("no", 3, 0, Some(&state(false, true, 0))));
        assert!(engine_restarts_it(
            "always",
            3,
            0,
            Some(&state(true, false, 1))
        ));
        assert!(!engine_restarts_it(
            "always",
            3,
            0,
            Some(&state(false, false, 0))
        ));
        // Without inspect, the policy.
        assert!(engine_restarts_it("always", 0, 9, None));
        assert!(engine_restarts_it("unless-stopped", 1, 0, None));
        assert!(engine_restarts_it("on-failure", 1, 0, None));
        assert!(!engine_restarts_it("on-failure", 0, 0, None));
        assert!(engine_restarts_it("on-failure:3", 1, 2, None));
        assert!(!engine_restarts_it("on-failure:3", 1, 3, None));
        assert!(!engine_restarts_it("no", 1, 0, None));
    }
}
