//! The long-running side of muster (`up --watch`, `up --serve`, `serve`):
//! runs the probe plan, forwards agent progress and start deadlines to the
//! state machines, and — once [`Supervision::start_healing`] is called — acts
//! on the runner's restart decisions, unready services, exits and dependents
//! ([`super::heal`]).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use super::heal::{HealHandle, HealOptions};
use super::plan::ProbePlan;
use super::runner::{
    Control, Inbox, ProbeRunner, RunnerOptions, ServiceDecision, StateWrites, StatusWrite,
};
use super::store::{StateStore, Writer};
use crate::signal::{AgentWatcher, Readiness};

/// Running probes and their helpers; dropping it stops them.
pub struct Supervision {
    runner: ProbeRunner,
    tasks: Vec<JoinHandle<()>>,
    /// Kept alive for the agent probes (they read its view).
    _watcher: Option<AgentWatcher>,
    /// Services the runner owns (they have probes).
    probed: BTreeSet<String>,
    /// The runner's restart requests, until the healer takes them.
    decisions: Option<tokio::sync::mpsc::UnboundedReceiver<ServiceDecision>>,
    store: StateStore,
    heal: Option<HealHandle>,
}

impl Supervision {
    /// Starts the probes of `plan`. With `start_all`, every probed service is
    /// taken as started now (`muster serve` on a stack that already runs);
    /// otherwise `up` tells the runner when each container starts.
    /// The runner becomes the one writer of `writer`'s store.
    pub fn start(writer: Writer, plan: ProbePlan, start_all: bool) -> Supervision {
        Supervision::start_on(super::runner::inbox(writer).1, plan, start_all)
    }

    /// [`Self::start`] with the runner on a channel made before (see
    /// [`super::runner::inbox`]: writes sent to it already wait there).
    pub fn start_on(inbox: Inbox, plan: ProbePlan, start_all: bool) -> Supervision {
        let store = inbox.store().clone();
        let store = &store;
        let ProbePlan {
            services,
            watcher,
            agents,
        } = plan;
        let probed: BTreeSet<String> = services.iter().map(|s| s.service.clone()).collect();
        let mut runner = ProbeRunner::spawn_on(
            inbox,
            services,
            RunnerOptions {
                start_all,
                ..RunnerOptions::default()
            },
        );
        let mut tasks = Vec::new();
        let decisions = runner.take_decisions();
        if let Some(watcher) = &watcher {
            for (name, link) in watcher.links() {
                tasks.push(store.follow_link(name, link));
            }
            tasks.push(tokio::spawn(forward_agent_progress(
                watcher.clone(),
                agents,
                runner.writes(),
            )));
        }
        Supervision {
            runner,
            tasks,
            _watcher: watcher,
            probed,
            decisions,
            store: store.clone(),
            heal: None,
        }
    }

    /// Starts healing: restarts with backoff and budget, exit handling,
    /// dependents, degraded, notifications (see [`super::heal`]). Once only;
    /// a second call is ignored.
    pub fn start_healing(&mut self, options: HealOptions) {
        if self.heal.is_some() {
            return;
        }
        if let Some(task) = super::telemetry::spawn(
            options.engine.clone(),
            self.store.clone(),
            options.telemetry.clone(),
        ) {
            self.tasks.push(task);
        }
        self.heal = Some(super::heal::spawn(
            self.runner.writes(),
            self.decisions.take(),
            self.probed.clone(),
            options,
        ));
    }

    /// `up` returned: the healer follows every service from now on.
    pub fn up_finished(&self) {
        if let Some(heal) = &self.heal {
            heal.up_finished();
        }
    }

    /// The healer, when healing was started.
    pub fn healer(&self) -> Option<&HealHandle> {
        self.heal.as_ref()
    }

    /// Where `up` sends container lifecycle events.
    pub fn controller(&self) -> tokio::sync::mpsc::UnboundedSender<Control> {
        self.runner.controller()
    }

    /// Where writes of service state go (the runner is their one writer).
    pub fn writes(&self) -> StateWrites {
        self.runner.writes()
    }
}

impl Drop for Supervision {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Copies each agent's progress text into its service's status, and keeps the
/// start window open while a `starting` agent has a deadline in the future
/// (sd_notify's EXTEND_TIMEOUT_USEC).
async fn forward_agent_progress(
    watcher: AgentWatcher,
    agents: Vec<(String, String)>,
    writes: StateWrites,
) {
    let control = writes.control();
    let mut changes = watcher.changes();
    let apply = |agent: &str| {
        let readiness = watcher.readiness(agent);
        for (service, _) in agents.iter().filter(|(_, a)| a == agent) {
            let progress = match &readiness {
                Readiness::Starting { progress, .. } => progress.clone(),
                _ => None,
            };
            writes.status(service, StatusWrite::Progress(progress.clone()));
            if let Readiness::Starting {
                deadline_ms: Some(deadline),
                ..
            } = readiness
            {
                let now = crate::clock::unix_ms(SystemTime::now());
                if deadline > now {
                    let until = tokio::time::Instant::now() + Duration::from_millis(deadline - now);
                    let _ = control.send(Control::ExtendDeadline {
                        service: service.clone(),
                        until,
                    });
                }
            }
        }
    };
    for (_, agent) in &agents {
        apply(agent);
    }
    loop {
        match changes.recv().await {
            Ok(change) => apply(&change.agent),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                for (_, agent) in &agents {
                    apply(agent);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
