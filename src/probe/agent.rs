//! The `agent` probe: answers from the [`AgentWatcher`]'s current view (kept
//! up to date by events), so a check costs no Redis round trip.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::compose::xmuster::AgentProbeSpec;
use crate::probe::{Probe, ProbeFuture, ProbeOutcome};
use crate::signal::{AgentWatcher, Readiness, SignalError};

/// Readiness of one agent from its ready signal.
#[derive(Debug, Clone)]
pub struct AgentProbe {
    watcher: AgentWatcher,
    agent: String,
}

impl AgentProbe {
    /// Watches `agent` (read at once, then kept current by events).
    pub fn new(watcher: AgentWatcher, agent: &str) -> Result<AgentProbe, SignalError> {
        watcher.track(agent)?;
        Ok(AgentProbe {
            watcher,
            agent: agent.to_string(),
        })
    }

    /// From `- agent: { name: … }`; the name defaults to the service name.
    pub fn from_spec(
        spec: &AgentProbeSpec,
        service: &str,
        watcher: AgentWatcher,
    ) -> Result<AgentProbe, SignalError> {
        Self::new(watcher, spec.name.as_deref().unwrap_or(service))
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The agent's current readiness as the watcher sees it.
    pub fn readiness(&self) -> Readiness {
        self.watcher.readiness(&self.agent)
    }

    /// When the agent is `starting` with a deadline still in the future: that
    /// deadline. The supervisor keeps the service's start window open until
    /// then (like systemd's EXTEND_TIMEOUT_USEC), so a slow agent that still
    /// reports progress is not failed.
    pub fn start_deadline(&self) -> Option<SystemTime> {
        self.watcher
            .start_deadline_ms(&self.agent)
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// The progress text of a `starting` agent ("loading model 40%").
    pub fn progress(&self) -> Option<String> {
        self.readiness().progress().map(str::to_string)
    }
}

/// The outcome text for a readiness: detail when ready, reason (with
/// progress and deadline) when not.
pub fn outcome_for(readiness: &Readiness, latency: Duration) -> ProbeOutcome {
    match readiness {
        Readiness::Ready { meta, .. } => {
            let detail = if meta.is_empty() {
                "ready".to_string()
            } else {
                format!("ready {}", serde_json::Value::Object(meta.clone()))
            };
            ProbeOutcome::ok(latency, detail)
        }
        Readiness::Starting {
            deadline_ms: Some(deadline),
            ..
        } => {
            let now = crate::clock::now_ms();
            if *deadline > now {
                let text = format!(
                    "{} (start deadline in {})",
                    readiness.reason(),
                    crate::duration::format(Duration::from_millis(deadline - now))
                );
                ProbeOutcome::starting(latency, text)
            } else {
                let text = format!("{} (start deadline passed)", readiness.reason());
                ProbeOutcome::fail(latency, text)
            }
        }
        Readiness::Starting { .. } => ProbeOutcome::starting(latency, readiness.reason()),
        other => ProbeOutcome::fail(latency, other.reason()),
    }
}

impl Probe for AgentProbe {
    fn kind(&self) -> &'static str {
        "agent"
    }

    fn target(&self) -> String {
        crate::signal::ready_key(self.watcher.namespace(), &self.agent)
    }

    fn check(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let started = Instant::now();
            let readiness = self.readiness();
            outcome_for(&readiness, started.elapsed())
        })
    }
}
