//! Readiness of a Swarm service, task by task, with muster's own probes.
//!
//! Swarm knows only a container's healthcheck; muster's probes (Redis PING,
//! NATS JetStream, HTTP, TCP) decide instead. A probe URL names the service
//! the way the stack sees itself (`redis://redis:6379`); on Swarm that name is
//! a virtual IP in front of every task, so probing it would say "one of them
//! answers". muster probes each task at its own overlay address instead
//! ([`retarget`] rewrites the host that names the service), and a service is
//! ready when its required number of tasks are ([`TaskProber`]). The probe
//! kinds themselves are `probe::build`'s, unchanged. A `docker` probe (the
//! container's own healthcheck) needs no network: Swarm runs the healthcheck
//! on the task's node and reports the task `running` only once it passed, so
//! a running task passes it.

use std::collections::BTreeMap;

use crate::compose::xmuster::{ProbeKind, ProbeRole, ProbeSpec};
use crate::probe::{self, Probe, ProbeContext};

use super::tasks::TaskView;

/// A probe spec `up --swarm` cannot run against a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "service {service}: x-muster.probes[{index}]: `up --swarm` cannot run {kind} probes yet \
     ({why}); use a tcp, http, redis or nats probe that names the service, or a docker \
     probe with a healthcheck (Swarm runs it on the task's node)"
)]
pub struct Unsupported {
    pub service: String,
    pub index: usize,
    pub kind: &'static str,
    pub why: &'static str,
}

/// The probes that gate readiness (startup and readiness roles; liveness
/// probes decide restarts, which Swarm does itself), checked for Swarm.
pub fn gating_probes(service: &str, specs: &[ProbeSpec]) -> Result<Vec<ProbeSpec>, Unsupported> {
    let mut out = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let why = match &spec.kind {
            ProbeKind::Exec(_) => Some("it needs the task's container, on whichever node runs it"),
            ProbeKind::Agent(_) => Some("agent ready signals are keyed by container, not task"),
            _ => None,
        };
        if let Some(why) = why {
            return Err(Unsupported {
                service: service.to_string(),
                index,
                kind: spec.kind.name(),
                why,
            });
        }
        if spec.timing.role != ProbeRole::Liveness {
            out.push(spec.clone());
        }
    }
    Ok(out)
}

/// `host` of a URL or `host:port` replaced by `address` when it names the
/// service (its name, an alias, or `tasks.<name>`).
fn swap_host(target: &str, names: &[String], address: &str) -> String {
    let (prefix, after) = match target.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), target),
    };
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(auth_end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || h.ends_with(']') => (h, format!(":{p}")),
        _ => (hostport, String::new()),
    };
    let names_it = names
        .iter()
        .any(|n| host == n || host.strip_prefix("tasks.") == Some(n.as_str()));
    if !names_it {
        return target.to_string();
    }
    format!("{prefix}{userinfo}{address}{port}{rest}")
}

/// `spec` aimed at one task: every host that names the service becomes the
/// task's overlay address; other hosts stay as written.
pub fn retarget(spec: &ProbeSpec, names: &[String], address: &str) -> ProbeSpec {
    let mut out = spec.clone();
    let swap = |s: &mut String| *s = swap_host(s, names, address);
    match &mut out.kind {
        ProbeKind::Redis(r) => swap(&mut r.url),
        ProbeKind::Http(h) => swap(&mut h.url),
        ProbeKind::Tcp(t) => swap(&mut t.address),
        ProbeKind::Nats(n) => {
            if let Some(u) = n.url.as_mut() {
                swap(u);
            }
            if let Some(u) = n.monitor_url.as_mut() {
                swap(u);
            }
        }
        ProbeKind::Exec(_) | ProbeKind::Docker(_) | ProbeKind::Agent(_) => {}
    }
    out
}

/// One task's probes and their consecutive successes.
struct TaskProbes {
    probes: Vec<(Box<dyn Probe>, u32)>,
    thresholds: Vec<u32>,
    timeouts: Vec<std::time::Duration>,
    ready: bool,
    last: String,
    /// What a `docker` probe says (it runs no check of muster's).
    docker: Option<&'static str>,
}

/// The probe state of a service's tasks, kept across polls.
pub struct TaskProber {
    service: String,
    names: Vec<String>,
    specs: Vec<ProbeSpec>,
    tasks: BTreeMap<String, TaskProbes>,
    /// The probe runs of the last poll (kind, outcome), for metrics.
    runs: Vec<(&'static str, probe::ProbeOutcome)>,
}

/// One task after a poll: its Swarm view, whether muster's probes pass, and
/// the last probe result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskState {
    #[serde(flatten)]
    pub task: TaskView,
    pub ready: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub probe: String,
}

impl TaskProber {
    /// `names`: the hosts that name the service in probe URLs (its compose
    /// name and aliases).
    pub fn new(service: &str, names: Vec<String>, specs: Vec<ProbeSpec>) -> TaskProber {
        TaskProber {
            service: service.to_string(),
            names,
            specs,
            tasks: BTreeMap::new(),
            runs: Vec::new(),
        }
    }

    /// The probe runs of the last [`TaskProber::poll`]: each one's kind and
    /// outcome (latency included), for the supervisor's metrics.
    pub fn take_runs(&mut self) -> Vec<(&'static str, probe::ProbeOutcome)> {
        std::mem::take(&mut self.runs)
    }

    /// The shortest period of the probes (how often to poll), at most 1 s.
    pub fn period(&self) -> std::time::Duration {
        self.specs
            .iter()
            .map(|s| s.timing.period)
            .min()
            .unwrap_or(std::time::Duration::from_millis(250))
            .min(std::time::Duration::from_secs(1))
    }

    /// Probes every running task once (all at once) and returns each task's
    /// state. A task with no probes is ready when it runs; a running task
    /// without an overlay address cannot be probed and is not ready.
    pub async fn poll(&mut self, tasks: &[TaskView]) -> Vec<TaskState> {
        self.tasks
            .retain(|id, _| tasks.iter().any(|t| &t.task_id == id && t.is_running()));
        for t in tasks.iter().filter(|t| t.is_running()) {
            if self.tasks.contains_key(&t.task_id) {
                continue;
            }
            let Some(address) = &t.address else { continue };
            let mut built = TaskProbes {
                probes: Vec::new(),
                thresholds: Vec::new(),
                timeouts: Vec::new(),
                ready: false,
                last: String::new(),
                docker: None,
            };
            let mut broken = false;
            for spec in &self.specs {
                // A task runs only once its healthcheck passed (Swarm keeps it
                // `starting` until then, and kills it when it turns
                // unhealthy): a running task passes its `docker` probe.
                if matches!(spec.kind, ProbeKind::Docker(_)) {
                    built.docker = Some("docker: running (Swarm applies the healthcheck)");
                    built.last = built.docker.unwrap_or_default().into();
                    continue;
                }
                let spec = retarget(spec, &self.names, address);
                let ctx = ProbeContext {
                    address_mode: probe::AddressMode::Network,
                    ..ProbeContext::for_service(&self.service)
                };
                match probe::build(&spec, &ctx) {
                    Ok(p) => {
                        built.probes.push((p, 0));
                        built.thresholds.push(spec.timing.success_threshold);
                        built.timeouts.push(spec.timing.timeout);
                    }
                    Err(e) => {
                        built.last = format!("probe cannot be built: {e}");
                        broken = true;
                    }
                }
            }
            built.ready = built.probes.is_empty() && !broken;
            self.tasks.insert(t.task_id.clone(), built);
        }
        let checks = self.tasks.values_mut().map(|tp| async move {
            let mut runs = Vec::new();
            if tp.probes.is_empty() {
                return runs;
            }
            let mut all = true;
            let mut last: Vec<String> = tp.docker.map(String::from).into_iter().collect();
            for (i, (p, successes)) in tp.probes.iter_mut().enumerate() {
                let outcome = match tokio::time::timeout(tp.timeouts[i], p.check()).await {
                    Ok(o) => o,
                    Err(_) => probe::ProbeOutcome::timeout(tp.timeouts[i]),
                };
                if outcome.is_ok() {
                    *successes += 1;
                } else {
                    *successes = 0;
                }
                if *successes < tp.thresholds[i] {
                    all = false;
                }
                let word = if outcome.is_ok() { "ok" } else { "fail" };
                let reason = if outcome.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", outcome.reason)
                };
                last.push(format!("{} {}: {word}{reason}", p.kind(), p.target()));
                runs.push((p.kind(), outcome));
            }
            tp.ready = all;
            tp.last = last.join("; ");
            runs
        });
        self.runs = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect();
        tasks
            .iter()
            .map(|t| {
                let probed = self.tasks.get(&t.task_id);
                let probe = match (probed, t.is_running(), &t.address) {
                    (Some(p), _, _) => p.last.clone(),
                    (None, true, None) => "no address on the probed overlay network".into(),
                    _ => String::new(),
                };
                TaskState {
                    task: t.clone(),
                    ready: t.is_running() && probed.is_some_and(|p| p.ready),
                    probe,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml_json: serde_json::Value) -> ProbeSpec {
        serde_json::from_value(yaml_json).unwrap()
    }

    #[test]
    fn hosts_that_name_the_service_become_the_task_address() {
        let names = vec!["redis".to_string(), "cache".to_string()];
        let s = spec(serde_json::json!({"redis": {"url": "redis://u:pw@redis:6379/2"}}));
        let r = retarget(&s, &names, "10.212.1.3");
        let ProbeKind::Redis(r) = r.kind else {
            panic!()
        };
        assert_eq!(r.url, "redis://u:pw@10.212.1.3:6379/2");
        let t = spec(serde_json::json!({"tcp": {"address": "tasks.cache:80"}}));
        let ProbeKind::Tcp(t) = retarget(&t, &names, "10.0.0.9").kind else {
            panic!()
        };
        assert_eq!(t.address, "10.0.0.9:80");
        let h = spec(serde_json::json!({"http": {"url": "http://other:8080/ready"}}));
        let ProbeKind::Http(h) = retarget(&h, &names, "10.0.0.9").kind else {
            panic!()
        };
        assert_eq!(h.url, "http://other:8080/ready", "other hosts stay");
        let n = spec(serde_json::json!({"nats": {"url": "nats://redis", "jetstream": true}}));
        let ProbeKind::Nats(n) = retarget(&n, &names, "10.0.0.9").kind else {
            panic!()
        };
        assert_eq!(n.url.as_deref(), Some("nats://10.0.0.9"));
    }

    #[test]
    fn exec_and_agent_probes_are_refused_liveness_does_not_gate() {
        let specs = vec![
            spec(serde_json::json!({"tcp": {"address": "x:1"}, "role": "liveness"})),
            spec(serde_json::json!({"tcp": {"address": "x:2"}})),
        ];
        assert_eq!(gating_probes("x", &specs).unwrap().len(), 1);
        let bad = vec![spec(serde_json::json!({"exec": {"command": ["true"]}}))];
        let err = gating_probes("api", &bad).unwrap_err().to_string();
        assert!(
            err.contains("service api") && err.contains("probes[0]") && err.contains("exec"),
            "{err}"
        );
        let agent = vec![spec(serde_json::json!({"agent": {}}))];
        assert!(gating_probes("api", &agent).is_err());
    }

    #[tokio::test]
    async fn a_docker_probe_passes_on_a_running_task_as_swarm_applies_the_healthcheck() {
        let docker = vec![spec(serde_json::json!({"docker": {}}))];
        let gating = gating_probes("api", &docker).expect("docker probes run on Swarm");
        let mut prober = TaskProber::new("api", vec!["api".into()], gating);
        let task = |id: &str, state: &str| TaskView {
            task_id: id.into(),
            slot: Some(1),
            node: "n1".into(),
            state: state.into(),
            desired: "running".into(),
            reason: String::new(),
            address: Some("10.0.0.2".into()),
            image: "api:1".into(),
        };
        let states = prober
            .poll(&[task("a", "running"), task("b", "starting")])
            .await;
        assert!(states[0].ready, "{:?}", states[0]);
        assert!(
            states[0].probe.contains("docker: running"),
            "{:?}",
            states[0]
        );
        assert!(
            !states[1].ready,
            "a task still starting (healthcheck) is not ready"
        );
        assert!(prober.take_runs().is_empty(), "no network probe ran");
    }
}
