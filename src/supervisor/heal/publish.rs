//! The healer and the store: what each new snapshot means (recoveries,
//! unready services to restart, degraded dependents), and the one batched
//! write of heal status, degraded marks, container ids, the replicas one by
//! one and the image they run, sent to the one writer (the probe runner).

use super::notify::Extra;
use super::*;

impl Healer {
    pub(super) fn on_snapshot(&mut self) {
        let snap = self.store.snapshot();
        let degraded = degraded(&snap);
        // First pass: what changed; the actions that need `&mut self` after it.
        let mut recovered: Vec<(String, String)> = Vec::new();
        let mut restart: Vec<(String, String)> = Vec::new();
        for (name, svc) in self.services.iter_mut() {
            let Some(status) = snap.services.get(name) else {
                continue;
            };
            let state = status.state;
            let entered = svc.last_state != Some(state);
            svc.last_state = Some(state);
            if state != ServiceState::Unready {
                svc.status.restart_held = None;
            }
            if state == ServiceState::Ready {
                svc.gave_up = false;
                if entered && svc.troubled {
                    svc.troubled = false;
                    svc.status.alert = None;
                    let text = format!(
                        "ready again ({}); {} restarts so far",
                        status.reason,
                        svc.status.muster_restarts
                            + svc.status.engine_restarts
                            + svc.status.external_restarts
                    );
                    tracing::info!(service = %name, reason = %status.reason, "service recovered");
                    recovered.push((name.clone(), text));
                }
                continue;
            }
            if svc.status.paused.is_some() {
                // Maintenance: nothing is acted on until resumed.
                continue;
            }
            if state == ServiceState::Unready
                && svc.settings.on_unready
                && svc.acted_unready_since != Some(status.since_ms)
            {
                if let Some(by) = degraded.get(name) {
                    // Unready because something it needs is down: restarting
                    // it would not help. Checked again when that changes.
                    let held = format!(
                        "not restarted while its dependencies are not ready: {}",
                        by.join(", ")
                    );
                    if svc.status.restart_held.as_ref() != Some(&held) {
                        tracing::info!(service = %name, held = %held, "unready, restart held back");
                        svc.status.restart_held = Some(held);
                    }
                    if svc
                        .pending
                        .as_ref()
                        .is_some_and(|p| p.trigger == Trigger::Unready)
                    {
                        svc.pending = None;
                        svc.status.next_restart_ms = None;
                        svc.status.next_delay_ms = None;
                    }
                    continue;
                }
                svc.status.restart_held = None;
                svc.acted_unready_since = Some(status.since_ms);
                restart.push((
                    name.clone(),
                    format!(
                        "unready past its failure threshold outside the start period: {}",
                        status.reason
                    ),
                ));
            }
        }
        for (name, text) in recovered {
            self.notify(&name, NotifyEvent::Recovered, &text, Extra::default());
        }
        for (name, reason) in restart {
            self.request_restart(&name, Trigger::Unready, reason);
        }
        self.check_waits(&snap);
        // A restart decision may have just written a state (`failed` past the
        // budget); publish against the store as it is now, so the alert and
        // the dependents' degraded marks land in the same view as that state
        // instead of one healer pass later.
        let snap = self.store.snapshot();
        let marks = self::degraded(&snap);
        self.publish(&snap, marks);
    }

    /// Writes heal status, degraded flags and (when following) container ids
    /// of the services whose values changed, in one snapshot swap.
    pub(super) fn publish(
        &self,
        snap: &crate::supervisor::state::StackSnapshot,
        mut degraded: BTreeMap<String, Vec<String>>,
    ) {
        let mut changes: Vec<(String, StatusWrite)> = Vec::new();
        // Container ids per service, when the healer keeps them.
        let mut ids: HashMap<&str, Vec<(u32, &String)>> = HashMap::new();
        let keep_ids = self.following && self.synced;
        if keep_ids {
            for (id, c) in &self.containers {
                ids.entry(c.service.as_str())
                    .or_default()
                    .push((c.number, id));
            }
        }
        for (name, status) in &snap.services {
            let mut by = degraded.remove(name).unwrap_or_default();
            if keep_ids {
                // Replicas that died while the others serve degrade the
                // service too, named next to its dependencies.
                by.extend(self.replica_marks(name));
            }
            if status.degraded == by.is_empty() || status.degraded_by != by {
                changes.push((name.clone(), StatusWrite::Degraded(by)));
            }
            let Some(svc) = self.services.get(name) else {
                continue;
            };
            if status.heal != svc.status {
                changes.push((name.clone(), StatusWrite::Heal(svc.status.clone())));
            }
            if keep_ids {
                let mut mine = ids.remove(name.as_str()).unwrap_or_default();
                mine.sort();
                let same = mine.len() == status.container_ids.len()
                    && mine
                        .iter()
                        .zip(&status.container_ids)
                        .all(|((_, a), b)| *a == b);
                if !same {
                    let list: Vec<String> = mine.into_iter().map(|(_, id)| id.clone()).collect();
                    changes.push((name.clone(), StatusWrite::ContainerIds(list)));
                }
                let replicas = self.replica_list(name);
                if replicas != status.replicas {
                    changes.push((name.clone(), StatusWrite::Replicas(replicas)));
                }
                // After a rollout the containers that serve run another
                // image than the compose file named.
                if let Some(image) = self.running_image(name) {
                    if status.image.is_some() && status.image.as_ref() != Some(image) {
                        changes.push((name.clone(), StatusWrite::Image(Some(image.clone()))));
                    }
                }
            }
        }
        // One request, applied by the one writer in one snapshot swap.
        self.writes.statuses(changes);
    }
}

/// For every service, the dependencies (followed transitively) that are not
/// ready: failed, unready, blocked or stopped, or starting again after they
/// had been ready.
pub fn degraded(snap: &crate::supervisor::state::StackSnapshot) -> BTreeMap<String, Vec<String>> {
    let troubled = |s: &ServiceStatus| match s.state {
        ServiceState::Unready
        | ServiceState::Failed
        | ServiceState::Blocked
        | ServiceState::Stopped => true,
        ServiceState::Starting | ServiceState::Pending => {
            s.transitions.iter().any(|t| t.to == ServiceState::Ready)
        }
        ServiceState::Ready | ServiceState::Completed => false,
    };
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let troubled: Vec<&ServiceStatus> = snap.services.values().filter(|s| troubled(s)).collect();
    if troubled.is_empty() {
        // The usual case, and it costs one pass.
        return out;
    }
    // From each troubled service up through its dependents.
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, status) in &snap.services {
        for dep in &status.depends_on {
            dependents
                .entry(dep.as_str())
                .or_default()
                .push(name.as_str());
        }
    }
    for t in troubled {
        let label = format!("{} ({})", t.name, t.state);
        let mut seen: HashSet<&str> = HashSet::from([t.name.as_str()]);
        let mut todo = vec![t.name.as_str()];
        while let Some(x) = todo.pop() {
            for d in dependents.get(x).into_iter().flatten() {
                if seen.insert(d) {
                    out.entry(d.to_string()).or_default().push(label.clone());
                    todo.push(d);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::state::StackSnapshot;

    #[test]
    pub(super) fn degraded_names_the_troubled_dependencies() {
        let store = crate::supervisor::Writer::new("p");
        for (name, deps) in [
            ("redis", vec![]),
            ("api", vec!["redis"]),
            ("web", vec!["api"]),
            ("batch", vec![]),
        ] {
            let mut s = ServiceStatus::pending(name);
            s.depends_on = deps.into_iter().map(String::from).collect();
            store.insert(s);
        }
        for s in ["redis", "api", "web", "batch"] {
            store.transition(s, ServiceState::Ready, "ok");
        }
        assert!(degraded(&store.snapshot()).is_empty());
        store.transition("redis", ServiceState::Unready, "refused");
        let d = degraded(&store.snapshot());
        assert_eq!(d["api"], vec!["redis (unready)"]);
        assert_eq!(d["web"], vec!["redis (unready)"]);
        assert!(!d.contains_key("batch") && !d.contains_key("redis"));
        // Starting again after having been ready still degrades dependents.
        store.transition("redis", ServiceState::Starting, "restarted");
        assert_eq!(degraded(&store.snapshot())["api"], vec!["redis (starting)"]);
        // A first start does not.
        let snap = StackSnapshot::default();
        assert!(degraded(&snap).is_empty());
        let store = crate::supervisor::Writer::new("q");
        let mut a = ServiceStatus::pending("a");
        a.depends_on = vec!["b".into()];
        store.insert(a);
        store.insert(ServiceStatus::pending("b"));
        store.transition("b", ServiceState::Starting, "container started");
        assert!(degraded(&store.snapshot()).is_empty());
    }
}
