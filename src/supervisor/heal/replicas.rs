//! Replicas one by one. A service with several containers is judged by the
//! ones that serve: while at least one of its containers runs, one replica
//! going down does not move the service's state (no `failed` for a second,
//! no `starting` when it comes back, no `starting` when a rollout or a
//! scale-up adds a container). Instead the replica is shown `exited` or
//! `stopped` in `/status` (`replicas`), the service is marked `degraded`
//! naming the container, and the dead replica is healed: by the engine when
//! its restart policy restarts it (told by the `restart` notice), by muster
//! (within the restart budget, after the backoff) when the engine will not
//! because it was `docker kill`ed, and not at all under `restart: no`. A
//! replica the engine does not restart raises an alert and a `degraded`
//! notice; when every replica runs again the alert clears and a
//! `recovered` notice goes out.
//!
//! Why the service stays up: that is what Compose and Kubernetes users
//! expect of replicas behind one DNS name (a Deployment stays available
//! while some pods are); a replica restarted by itself is not a restart of
//! the service. When the last running container goes down, the usual
//! whole-service rules of `engine_view.rs` apply.

use super::notify::Extra;
use super::*;
use crate::supervisor::state::{ReplicaState, ReplicaStatus};

/// Why a replica is down.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Down {
    /// Exit code of a replica that died; `None` for a stop.
    pub(super) code: Option<i64>,
    /// What happens next, as `/status` shows it.
    pub(super) note: String,
}

impl Healer {
    /// Another container of the same service runs.
    fn sibling_runs(&self, id: &str) -> bool {
        let Some(service) = self.containers.get(id).map(|c| c.service.as_str()) else {
            return false;
        };
        self.containers
            .iter()
            .any(|(other, c)| other != id && c.service == service && c.running)
    }

    /// `(running, all)` containers of `service`.
    fn replica_counts(&self, service: &str) -> (usize, usize) {
        let mine = self.containers.values().filter(|c| c.service == service);
        let all = mine.clone().count();
        (mine.filter(|c| c.running).count(), all)
    }

    /// A replica was stopped or killed while others run. Returns false when
    /// the whole-service rules apply instead.
    pub(super) fn replica_stopped(&mut self, id: &str, code: i64, hard_kill: bool) -> bool {
        if !self.following || !self.sibling_runs(id) {
            return false;
        }
        if hard_kill {
            // `docker kill`: the engine's restart policy does not restart a
            // container killed by hand, so muster heals it per the policy.
            return self.replica_exited(id, code, false, false);
        }
        let Some(c) = self.containers.get_mut(id) else {
            return false;
        };
        c.since_ms = now_ms();
        c.down = Some(Down {
            code: None,
            note: "stopped on purpose; not restarted".into(),
        });
        tracing::info!(service = %c.service, container = %c.name, "replica stopped; the other replicas serve");
        true
    }

    /// A replica died while others run. Returns false when the
    /// whole-service rules apply instead.
    pub(super) fn replica_exited(
        &mut self,
        id: &str,
        code: i64,
        restarting: bool,
        oom: bool,
    ) -> bool {
        if !self.following || !self.sibling_runs(id) {
            return false;
        }
        let Some((service, name)) = self.note_exit(id, code, restarting, oom) else {
            return false;
        };
        let (running, all) = self.replica_counts(&service);
        let Some(svc) = self.services.get(&service) else {
            return false;
        };
        let oom_text = self.oom_text(id, oom);
        let reason = format!(
            "replica {name} exited with code {code}{oom_text}; {running} of {all} replicas run"
        );
        let policy = svc.policy.clone();
        let by_muster =
            !restarting && policy != "no" && !(code == 0 && policy.starts_with("on-failure"));
        let note = if restarting {
            format!("the engine restarts it (restart: {policy})")
        } else if by_muster {
            "muster starts it again after the backoff (restart budget)".to_string()
        } else {
            format!("restart policy `{policy}` does not restart it")
        };
        if let Some(c) = self.containers.get_mut(id) {
            c.since_ms = now_ms();
            c.down = Some(Down {
                code: Some(code),
                note: note.clone(),
            });
        }
        tracing::warn!(service = %service, container = %name, code, note = %note, "replica exited; the service stays up with the other replicas");
        if !restarting {
            // Down until someone acts: an alert and a notice. (One the engine
            // restarts is told by its `restart` notice, as for a service,
            // without an alert and a recovery around each crash.)
            let text = format!("{reason}; {note}");
            if let Some(svc) = self.services.get_mut(&service) {
                svc.status.alert = Some(text.clone());
                svc.replica_alert = true;
            }
            self.notify(&service, NotifyEvent::Degraded, &text, Extra::default());
        }
        if by_muster {
            self.request_restart(&service, Trigger::Replica(id.to_string()), reason);
        }
        true
    }

    /// A container of `service` started while another one runs: a replica
    /// that comes back or joins. Returns false when the whole-service rules
    /// apply instead.
    pub(super) fn replica_started(
        &mut self,
        id: &str,
        was_started: bool,
        was_down: Option<Down>,
        state: Option<&ContainerState>,
        previous_count: u32,
    ) -> bool {
        if !self.following || !self.sibling_runs(id) {
            return false;
        }
        let Some(c) = self.containers.get(id) else {
            return false;
        };
        let (service, name) = (c.service.clone(), c.name.clone());
        let by_engine = state
            .map(|s| s.restart_count.saturating_sub(previous_count))
            .unwrap_or(0);
        if by_engine > 0 {
            let policy = self
                .services
                .get(&service)
                .map(|s| s.policy.clone())
                .unwrap_or_default();
            self.replica_restart_seen(
                &service,
                RestartBy::Engine,
                by_engine,
                format!("replica {name} restarted by the engine (restart: {policy})"),
            );
        } else if !was_started {
            // Scale-up, or a rollout's new container (start-first): the
            // service keeps serving on the others meanwhile.
            tracing::info!(service = %service, container = %name, "replica joined");
        } else {
            self.replica_restart_seen(
                &service,
                RestartBy::External,
                1,
                format!("replica {name} started again outside muster"),
            );
        }
        if was_down.is_some() {
            tracing::info!(service = %service, container = %name, "replica runs again");
        }
        self.replica_back(&service);
        true
    }

    /// A replica was restarted by the engine or someone else: counted and
    /// notified like any restart, but the service itself did not go down,
    /// so no new start window, no `restart: true` dependents restarted.
    fn replica_restart_seen(&mut self, service: &str, by: RestartBy, count: u32, reason: String) {
        if self.count_restart(service, by, count, &reason, now_ms()) {
            let extra = Extra {
                by: Some(by),
                ..Extra::default()
            };
            self.notify_restart(service, &reason, extra);
        }
    }

    /// Once every replica of `service` runs again: the replica alert clears.
    pub(super) fn replica_back(&mut self, service: &str) {
        let (running, all) = self.replica_counts(service);
        let Some(svc) = self.services.get_mut(service) else {
            return;
        };
        if running < all || !svc.replica_alert {
            return;
        }
        svc.replica_alert = false;
        svc.status.alert = None;
        let text = format!("all {all} replicas run again");
        tracing::info!(service = %service, "{text}");
        self.notify(service, NotifyEvent::Recovered, &text, Extra::default());
    }

    /// The containers of `service` as `/status` shows them, by number.
    pub(super) fn replica_list(&self, service: &str) -> Vec<ReplicaStatus> {
        let mut list: Vec<ReplicaStatus> = self
            .containers
            .iter()
            .filter(|(_, c)| c.service == service)
            .map(|(id, c)| {
                let (state, exit_code, note) = match (&c.down, c.running, c.ever_started) {
                    (_, true, _) => (ReplicaState::Running, None, None),
                    (Some(d), false, _) => (
                        if d.code.is_some() {
                            ReplicaState::Exited
                        } else {
                            ReplicaState::Stopped
                        },
                        d.code,
                        Some(d.note.clone()),
                    ),
                    (None, false, true) => (ReplicaState::Stopped, None, None),
                    (None, false, false) => (ReplicaState::Created, None, None),
                };
                ReplicaStatus {
                    name: c.name.clone(),
                    id: id.clone(),
                    number: c.number,
                    state,
                    since_ms: c.since_ms,
                    image: c.image.clone(),
                    exit_code,
                    note,
                    restarts: c.restart_count,
                    oom_kills: c.oom_kills,
                }
            })
            .collect();
        list.sort_by(|a, b| (a.number, &a.name).cmp(&(b.number, &b.name)));
        list
    }

    /// `replica NAME (exited 137)` for every replica that died and is not
    /// running again (what `degraded_by` shows next to the dependencies).
    pub(super) fn replica_marks(&self, service: &str) -> Vec<String> {
        let mut marks: Vec<(u32, String)> = self
            .containers
            .values()
            .filter(|c| c.service == service && !c.running)
            .filter_map(|c| {
                let code = c.down.as_ref()?.code?;
                Some((c.number, format!("replica {} (exited {code})", c.name)))
            })
            .collect();
        marks.sort();
        marks.into_iter().map(|(_, m)| m).collect()
    }

    /// The image the running containers of `service` share, when they share one.
    pub(super) fn running_image(&self, service: &str) -> Option<&String> {
        let mut images = self
            .containers
            .values()
            .filter(|c| c.service == service && c.running)
            .map(|c| c.image.as_ref());
        let first = images.next()??;
        images.all(|i| i == Some(first)).then_some(first)
    }
}
