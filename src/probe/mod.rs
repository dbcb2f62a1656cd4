//! Readiness probes. Every kind implements [`Probe`] and reports one [`ProbeOutcome`].

pub mod agent;
pub mod spec;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A boxed future, so probes of different kinds can live in one `Vec<Box<dyn Probe>>`.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ProbeOutcome> + Send + 'a>>;

/// One probe target. `check` must return within the probe's timeout: the runner
/// also wraps it in `tokio::time::timeout` and reports [`ProbeStatus::Timeout`].
pub trait Probe: Send + Sync {
    /// Short kind name: `redis`, `nats`, `http`, `tcp`, `exec`, `docker`, `agent`.
    fn kind(&self) -> &'static str;
    /// What is probed, for humans (`redis://redis:6379`, secrets removed).
    fn target(&self) -> String;
    /// Runs one check.
    fn check(&mut self) -> ProbeFuture<'_>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    Ok,
    Fail,
    Timeout,
}

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    pub status: ProbeStatus,
    /// Why it failed (empty when ok, or a short detail such as "PONG").
    pub reason: String,
    #[serde(with = "crate::duration::serde_dur")]
    pub latency: Duration,
    /// Wall-clock time the check finished, unix milliseconds.
    pub at_ms: u64,
}

impl ProbeOutcome {
    pub fn ok(latency: Duration, detail: impl Into<String>) -> Self {
        Self::new(ProbeStatus::Ok, latency, detail)
    }

    pub fn fail(latency: Duration, reason: impl Into<String>) -> Self {
        Self::new(ProbeStatus::Fail, latency, reason)
    }

    pub fn timeout(latency: Duration) -> Self {
        Self::new(
            ProbeStatus::Timeout,
            latency,
            format!("timed out after {}", crate::duration::format(latency)),
        )
    }

    fn new(status: ProbeStatus, latency: Duration, reason: impl Into<String>) -> Self {
        ProbeOutcome {
            status,
            reason: reason.into(),
            latency,
            at_ms: unix_ms(SystemTime::now()),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == ProbeStatus::Ok
    }
}

/// Unix milliseconds of a wall-clock time (0 before the epoch).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
