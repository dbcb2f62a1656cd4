//! Following one service's tasks: list them (with node names and overlay
//! addresses), probe the running ones, report each task whose state or probe
//! result changed, and say how many must be ready. `up --swarm` and
//! `rollout --swarm` both follow services this way; they differ only in which
//! tasks count (a rollout counts the tasks of the new image).

use std::collections::HashMap;

use crate::compose::xmuster::ProbeSpec;
use crate::compose::{Project, Service};
use crate::engine::Engine;

use super::cluster::{Manager, Progress};
use super::readiness::{TaskProber, TaskState};
use super::spec;
use super::tasks::{list_tasks, parse_tasks, TaskView};
use super::SwarmError;

/// The probed overlay network of a service: its first network.
fn probed_network(project: &Project, service: &Service) -> String {
    let key = crate::engine::translate::service_network_keys(service)
        .into_iter()
        .next()
        .unwrap_or_else(|| "default".into());
    spec::network_name(project, &key)
}

/// The task follower of one service.
pub(crate) struct TaskWatch<'a> {
    engine: &'a Engine,
    manager: &'a Manager,
    service: &'a Service,
    swarm_name: String,
    network: String,
    api: String,
    prober: TaskProber,
    shown: HashMap<String, (String, bool, String)>,
    progress: &'a (dyn Fn(Progress) + Send + Sync),
}

impl<'a> TaskWatch<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        manager: &'a Manager,
        project: &Project,
        service: &'a Service,
        swarm_name: &str,
        gating: Vec<ProbeSpec>,
        progress: &'a (dyn Fn(Progress) + Send + Sync),
    ) -> TaskWatch<'a> {
        let mut names = vec![service.name.clone()];
        for n in service.networks.values() {
            names.extend(n.aliases.iter().cloned());
        }
        TaskWatch {
            engine,
            manager,
            service,
            swarm_name: swarm_name.to_string(),
            network: probed_network(project, service),
            api: engine.api_version(),
            prober: TaskProber::new(&service.name, names, gating),
            shown: HashMap::new(),
            progress,
        }
    }

    /// How often to poll.
    pub(crate) fn period(&self) -> std::time::Duration {
        self.prober.period()
    }

    /// The probe runs of the last poll (kind, outcome).
    pub(crate) fn take_runs(&mut self) -> Vec<(&'static str, crate::probe::ProbeOutcome)> {
        self.prober.take_runs()
    }

    /// Tasks that must be ready: `x-muster.ready_tasks`, else the replicas
    /// (global: every task Swarm wants running, at least 1).
    pub(crate) fn required(&self, tasks: &[TaskState]) -> usize {
        let wanted = tasks.iter().filter(|t| t.task.desired == "running").count();
        match self.service.muster.as_ref().and_then(|m| m.ready_tasks) {
            Some(n) => n as usize,
            None if spec::is_global(self.service) => wanted.max(1),
            None => self.service.replicas as usize,
        }
    }

    /// One poll: the tasks `keep` selects, probed, changes reported.
    pub(crate) async fn poll(
        &mut self,
        keep: impl Fn(&TaskView) -> bool,
    ) -> Result<Vec<TaskState>, SwarmError> {
        let json = list_tasks(self.engine.host(), &self.api, &self.swarm_name).await?;
        let tasks: Vec<TaskView> = parse_tasks(&json, &self.network, &self.manager.nodes)
            .into_iter()
            .filter(|t| keep(t))
            .collect();
        let states = self.prober.poll(&tasks).await;
        for s in &states {
            let key = (s.task.state.clone(), s.ready, s.probe.clone());
            if self.shown.get(&s.task.task_id) != Some(&key) {
                self.shown.insert(s.task.task_id.clone(), key);
                (self.progress)(Progress::Task {
                    service: self.service.name.clone(),
                    state: s.clone(),
                });
            }
        }
        Ok(states)
    }
}
