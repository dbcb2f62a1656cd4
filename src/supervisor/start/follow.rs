//! Following a started service until it is ready, completed or failed: the
//! engine's events for its containers (health, die), a re-inspect now and
//! then in case the stream breaks, and muster's probes when it has them.

use super::*;
use crate::engine::{Action, Health};

#[derive(Debug, Clone, Default)]
pub(super) struct Obs {
    pub(super) ever_running: bool,
    pub(super) running: bool,
    pub(super) health: Option<Health>,
    pub(super) has_healthcheck: bool,
    pub(super) exit: Option<i64>,
}

pub(super) async fn follow(
    ctx: &Ctx,
    name: &str,
    ids: Vec<String>,
    mut events: broadcast::Receiver<EngineMsg>,
    began: Instant,
) {
    let me = &ctx.progress[name];
    if ids.is_empty() {
        return;
    }
    let mut obs: HashMap<String, Obs> = HashMap::new();
    // One inspect after start: the state as of now (events carry the changes).
    for id in &ids {
        match ctx.engine.inspect_container(id).await {
            Ok(d) => {
                obs.insert(
                    id.clone(),
                    Obs {
                        ever_running: d.running || d.exit_code.is_some(),
                        running: d.running,
                        health: d.health.clone(),
                        has_healthcheck: d.has_healthcheck,
                        exit: d.exit_code,
                    },
                );
            }
            Err(e) => {
                let reason = e.to_string();
                ctx.writes.set(name, ServiceState::Failed, &reason);
                me.send_modify(|p| p.failed = Some(reason));
                return;
            }
        }
    }
    // A safety net in case the event stream breaks: re-inspect now and then.
    let mut safety = tokio::time::interval(Duration::from_secs(5));
    safety.tick().await;
    let gate = ctx.gate.as_ref().filter(|g| g.services.contains(name));
    let mut store_changes = ctx.store.watch();
    // The state this task last wrote (the writer applies it a moment later,
    // so the store is no guide to what was sent).
    let mut written = None;
    loop {
        if evaluate(ctx, name, &obs, began, gate.is_some(), &mut written) {
            return;
        }
        tokio::select! {
            // The probe runner writes readiness of gated services to the store.
            changed = store_changes.changed(), if gate.is_some() => {
                if changed.is_err() {
                    safety.tick().await;
                }
            }
            ev = events.recv() => match ev {
                Ok(EngineMsg::Event { event: ev, .. }) => {
                    let Some(o) = obs.get_mut(&ev.container_id) else { continue };
                    match ev.action {
                        Action::Start => {
                            o.running = true;
                            o.ever_running = true;
                            o.exit = None;
                        }
                        Action::Die => {
                            o.running = false;
                            o.ever_running = true;
                            o.exit = Some(ev.exit_code.unwrap_or(-1));
                        }
                        Action::HealthStatus => o.health = ev.health.clone(),
                        _ => {}
                    }
                }
                // The watcher reconnected (events may be missed in between)
                // or this task fell behind: ask the engine.
                Ok(EngineMsg::Resync { .. }) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    reinspect(ctx, &ids, &mut obs).await;
                }
                // Reconnecting; the resync after it, or the safety net, catches up.
                Ok(EngineMsg::Down { .. }) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    safety.tick().await;
                    reinspect(ctx, &ids, &mut obs).await;
                }
            },
            _ = safety.tick() => reinspect(ctx, &ids, &mut obs).await,
        }
    }
}

pub(super) async fn reinspect(ctx: &Ctx, ids: &[String], obs: &mut HashMap<String, Obs>) {
    for id in ids {
        if let (Ok(d), Some(o)) = (ctx.engine.inspect_container(id).await, obs.get_mut(id)) {
            o.running = d.running;
            o.ever_running |= d.running || d.exit_code.is_some();
            o.health = d.health;
            o.exit = d.exit_code;
        }
    }
}

/// Publishes the service's progress and state; true when nothing more can change
/// for this `up` (failed, or completed). `written` is the state this task
/// last sent to the writer.
pub(super) fn evaluate(
    ctx: &Ctx,
    name: &str,
    obs: &HashMap<String, Obs>,
    began: Instant,
    probed: bool,
    written: &mut Option<ServiceState>,
) -> bool {
    let me = &ctx.progress[name];
    let all = obs.values();
    let started = all.clone().all(|o| o.ever_running);
    let has_hc = obs.values().any(|o| o.has_healthcheck);
    let probe_state = probed
        .then(|| {
            ctx.store
                .snapshot()
                .services
                .get(name)
                .map(|s| (s.state, s.reason.clone()))
        })
        .flatten();
    let healthy = if probed {
        matches!(probe_state, Some((ServiceState::Ready, _))) && obs.values().all(|o| o.running)
    } else if has_hc {
        obs.values()
            .all(|o| o.health == Some(Health::Healthy) && o.running)
    } else {
        obs.values().all(|o| o.running)
    };
    let exits: Vec<i64> = obs.values().filter_map(|o| o.exit).collect();
    let took = format!("{:.1} s", began.elapsed().as_secs_f64());

    // With muster's healer attached, exits of probed services are its to
    // judge (a restart it makes is not a failure; a real exit reaches this
    // task as the runner's `failed`).
    let healed = probed
        && ctx
            .store
            .snapshot()
            .services
            .get(name)
            .is_some_and(|s| s.heal.supervised);
    if let Some(code) = exits.iter().copied().find(|c| *c != 0 && !healed) {
        let reason = format!("exited with code {code}");
        ctx.writes.set(name, ServiceState::Failed, &reason);
        me.send_modify(|p| {
            p.started = true;
            p.exit = Some(code);
            p.failed = Some(reason);
        });
        return true;
    }
    if exits.len() == obs.len() && exits.iter().all(|c| *c == 0) {
        ctx.writes
            .set(name, ServiceState::Completed, format!("exited 0 in {took}"));
        me.send_modify(|p| {
            p.started = true;
            p.healthy = false;
            p.exit = Some(0);
        });
        return true;
    }
    if let Some((ServiceState::Failed, reason)) = &probe_state {
        // The runner's machine gave up (readiness failing past the start window).
        me.send_modify(|p| {
            p.started = true;
            p.failed = Some(reason.clone());
        });
        return true;
    }
    if !probed && has_hc && obs.values().any(|o| o.health == Some(Health::Unhealthy)) {
        let reason = "healthcheck reports unhealthy".to_string();
        ctx.writes.set(name, ServiceState::Failed, &reason);
        me.send_modify(|p| {
            p.started = true;
            p.failed = Some(reason);
        });
        return true;
    }
    if healthy && !probed && *written != Some(ServiceState::Ready) {
        let word = if has_hc { "healthy" } else { "running" };
        ctx.writes
            .set(name, ServiceState::Ready, format!("{word} in {took}"));
        *written = Some(ServiceState::Ready);
    }
    me.send_if_modified(|p| {
        let changed = p.started != started || p.healthy != healthy;
        p.started = started;
        p.healthy = healthy;
        changed
    });
    false
}
