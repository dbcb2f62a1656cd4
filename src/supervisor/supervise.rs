//! The long-running side of muster (`up --watch`, `up --serve`, `serve`):
//! runs the probe plan, forwards agent progress and start deadlines to the
//! state machines, and reports the runner's restart decisions.

use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use super::plan::ProbePlan;
use super::runner::{Control, ProbeRunner, RunnerOptions};
use super::store::StateStore;
use crate::signal::{AgentWatcher, Readiness};

/// Running probes and their helpers; dropping it stops them.
pub struct Supervision {
    runner: ProbeRunner,
    tasks: Vec<JoinHandle<()>>,
    /// Kept alive for the agent probes (they read its view).
    _watcher: Option<AgentWatcher>,
}

impl Supervision {
    /// Starts the probes of `plan`. With `start_all`, every probed service is
    /// taken as started now (`muster serve` on a stack that already runs);
    /// otherwise `up` tells the runner when each container starts.
    pub fn start(store: &StateStore, plan: ProbePlan, start_all: bool) -> Supervision {
        let ProbePlan {
            services,
            watcher,
            agents,
        } = plan;
        let mut runner = ProbeRunner::spawn(
            store.clone(),
            services,
            RunnerOptions {
                start_all,
                ..RunnerOptions::default()
            },
        );
        let mut tasks = Vec::new();
        if let Some(mut decisions) = runner.take_decisions() {
            tasks.push(tokio::spawn(async move {
                while let Some(d) = decisions.recv().await {
                    // Acting on restarts, with backoff and a budget, is issue 7.
                    tracing::warn!(service = %d.service, decision = ?d.decision, "restart requested by a liveness/startup probe; automatic restarts are not built yet");
                }
            }));
        }
        if let Some(watcher) = &watcher {
            tasks.push(tokio::spawn(forward_agent_progress(
                watcher.clone(),
                agents,
                store.clone(),
                runner.controller(),
            )));
        }
        Supervision {
            runner,
            tasks,
            _watcher: watcher,
        }
    }

    /// Where `up` sends container lifecycle events.
    pub fn controller(&self) -> tokio::sync::mpsc::UnboundedSender<Control> {
        self.runner.controller()
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
    store: StateStore,
    control: tokio::sync::mpsc::UnboundedSender<Control>,
) {
    let mut changes = watcher.changes();
    let apply = |agent: &str| {
        let readiness = watcher.readiness(agent);
        for (service, _) in agents.iter().filter(|(_, a)| a == agent) {
            let progress = match &readiness {
                Readiness::Starting { progress, .. } => progress.clone(),
                _ => None,
            };
            store.update(service, |s| s.progress = progress.clone());
            if let Readiness::Starting {
                deadline_ms: Some(deadline),
                ..
            } = readiness
            {
                let now = crate::probe::unix_ms(SystemTime::now());
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
