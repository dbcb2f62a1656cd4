//! Probes run once instead of on a period: [`run_once`] bounds one check by
//! its timeout (the runner's checks, `muster check --probe`, and the probe
//! tests use it), and [`check_once`] runs every probe of a stack once at the
//! same time for `muster status` when no muster is running.

use std::time::Duration;

use tokio::time::Instant;

use super::state::{ProbeReport, ServiceStatus};
use crate::probe::{Probe, ProbeOutcome};

/// One check bounded by `timeout`: a check that does not return in time is a
/// [`crate::probe::ProbeStatus::Timeout`], never a hang.
pub async fn run_once(probe: &mut dyn Probe, timeout: Duration) -> ProbeOutcome {
    let start = Instant::now();
    match tokio::time::timeout(timeout, probe.check()).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::timeout(start.elapsed()),
    }
}

/// A probe [`check_once`] could not build (bad settings), with what names
/// it (see [`super::plan::probe_error`] for the file and line).
#[derive(Debug)]
pub struct ProbeBuildError {
    pub service: String,
    pub index: usize,
    pub kind: &'static str,
    pub field: Option<&'static str>,
    pub message: String,
}

/// Runs every probe of every service once, at the same time, and returns
/// the stack as a snapshot (what `muster status` prints when no muster is
/// running). A service is `ready` when all its probes pass, `unready` when one
/// fails, `pending` when it has no probe that can run here. A probe that cannot
/// be built is an error naming the service and the probe's position.
pub async fn check_once(
    project: &str,
    services: &std::collections::BTreeMap<String, crate::compose::xmuster::MusterService>,
    base: &crate::probe::ProbeContext,
) -> Result<super::state::StackSnapshot, ProbeBuildError> {
    use super::state::{ServiceState, StackSnapshot};
    use crate::clock::unix_ms;
    use crate::compose::xmuster::ProbeKind;

    let mut jobs = Vec::new();
    for (name, svc) in services {
        let ctx = crate::probe::ProbeContext {
            service: name.clone(),
            ..base.clone()
        };
        let mut built = Vec::new();
        let mut skipped = Vec::new();
        for (i, spec) in svc.probes.iter().enumerate() {
            if matches!(spec.kind, ProbeKind::Agent(_)) {
                skipped.push("agent probe (ready signal) is read by a running muster".to_string());
                continue;
            }
            let probe = crate::probe::build(spec, &ctx).map_err(|e| ProbeBuildError {
                service: name.clone(),
                index: i,
                kind: spec.kind.name(),
                field: e.field_name(),
                message: e.to_string(),
            })?;
            built.push((spec.timing.clone(), probe));
        }
        jobs.push((name.clone(), svc.required, built, skipped));
    }
    let now_ms = unix_ms(std::time::SystemTime::now());
    let runs = jobs
        .into_iter()
        .map(|(name, required, built, skipped)| async move {
            let mut reports = Vec::new();
            let checks = built.into_iter().map(|(timing, mut probe)| async move {
                let outcome = run_once(probe.as_mut(), timing.timeout).await;
                ProbeReport {
                    kind: probe.kind().to_string(),
                    target: probe.target(),
                    role: timing.role,
                    consecutive_failures: u32::from(!outcome.is_ok()),
                    consecutive_successes: u32::from(outcome.is_ok()),
                    last: Some(outcome),
                }
            });
            reports.extend(futures_util::future::join_all(checks).await);
            let mut status = ServiceStatus::pending(name.clone());
            status.required = required;
            status.since_ms = now_ms;
            let failed = reports
                .iter()
                .find(|r| r.last.as_ref().is_some_and(|o| !o.is_ok()));
            if let Some(f) = failed {
                status.state = ServiceState::Unready;
                status.reason = f
                    .last
                    .as_ref()
                    .map(|o| o.reason.clone())
                    .unwrap_or_default();
            } else if !reports.is_empty() {
                status.state = ServiceState::Ready;
                status.reason = reports
                    .iter()
                    .filter_map(|r| r.last.as_ref().map(|o| o.reason.clone()))
                    .collect::<Vec<_>>()
                    .join("; ");
            } else if let Some(why) = skipped.first() {
                status.reason = why.clone();
            } else {
                status.reason = "no probes configured".to_string();
            }
            status.probes = reports;
            (name, status)
        });
    let services = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .collect();
    Ok(StackSnapshot {
        project: project.to_string(),
        at_ms: unix_ms(std::time::SystemTime::now()),
        services,
        engine: None,
        links: Default::default(),
    })
}
