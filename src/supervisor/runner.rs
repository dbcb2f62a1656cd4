//! The probe runner: runs every probe of every service on its period, each run
//! bounded by `tokio::time::timeout(timeout)`, feeds the results into the
//! per-service [`ServiceMachine`]s and writes through [`StateStore`].
//!
//! One task per probe does the checks; one loop task owns all machines, so the
//! machines need no locks. Transitions are written at once; probe reports
//! (last outcome, latency, streaks) are written in batches every
//! `flush_interval` with one snapshot swap, so a thousand probes a second do
//! not copy the snapshot a thousand times a second. [`Decision`]s (restart a
//! container) go out on a channel for the supervisor to act on.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::machine::{Decision, ServiceMachine, Step};
use super::state::{ProbeReport, ServiceStatus};
use super::store::{ProbeObservation, StateStore};
use crate::probe::spec::ProbeTiming;
use crate::probe::{Probe, ProbeOutcome};

/// One built probe with its timing.
pub struct RunnerProbe {
    pub timing: ProbeTiming,
    pub probe: Box<dyn Probe>,
}

/// A service and its probes.
pub struct ServiceProbes {
    pub service: String,
    pub required: bool,
    /// Effective grace (start) period.
    pub grace: Duration,
    pub probes: Vec<RunnerProbe>,
}

/// Lifecycle events the supervisor tells the runner about.
#[derive(Debug, Clone)]
pub enum Control {
    /// The container started: the service goes `starting` with a fresh start window.
    Started {
        service: String,
    },
    /// The container was restarted (after a [`Decision::Restart`] or otherwise).
    Restarted {
        service: String,
    },
    Stopped {
        service: String,
        reason: String,
    },
    Exited {
        service: String,
        code: i64,
        one_shot: bool,
    },
    /// An agent reported progress: keep its start window open until `until`.
    ExtendDeadline {
        service: String,
        until: Instant,
    },
}

/// A decision for the supervisor, with the service it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDecision {
    pub service: String,
    pub decision: Decision,
}

#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// How often batched probe reports are written to the store.
    pub flush_interval: Duration,
    /// Mark every service started at once (`muster serve` on a running stack).
    pub start_all: bool,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            flush_interval: Duration::from_millis(250),
            start_all: false,
        }
    }
}

/// Running probes; dropping it stops them.
pub struct ProbeRunner {
    control: mpsc::UnboundedSender<Control>,
    decisions: Option<mpsc::UnboundedReceiver<ServiceDecision>>,
    tasks: Vec<JoinHandle<()>>,
}

struct Meta {
    kind: &'static str,
    target: String,
    timing: ProbeTiming,
}

struct Entry {
    name: String,
    machine: ServiceMachine,
    meta: Vec<Meta>,
    dirty: bool,
}

impl ProbeRunner {
    /// Starts one task per probe and the loop that owns the machines. Services
    /// are added to the store (as `pending`) when it does not have them yet.
    pub fn spawn(
        store: StateStore,
        services: Vec<ServiceProbes>,
        options: RunnerOptions,
    ) -> ProbeRunner {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (decision_tx, decision_rx) = mpsc::unbounded_channel();
        let (result_tx, result_rx) = mpsc::channel::<(usize, usize, ProbeOutcome)>(4096);
        let now = Instant::now();
        let total: usize = services.iter().map(|s| s.probes.len()).sum();
        let mut entries = Vec::with_capacity(services.len());
        let mut tasks = Vec::with_capacity(total + 1);
        let mut n = 0usize;
        for (si, set) in services.into_iter().enumerate() {
            let timings: Vec<ProbeTiming> = set.probes.iter().map(|p| p.timing.clone()).collect();
            let machine = ServiceMachine::new(&timings, set.grace, now.into_std());
            let mut meta = Vec::with_capacity(set.probes.len());
            for (pi, rp) in set.probes.into_iter().enumerate() {
                meta.push(Meta {
                    kind: rp.probe.kind(),
                    target: rp.probe.target(),
                    timing: rp.timing.clone(),
                });
                // Spread first runs over one period so probes do not fire in lockstep.
                let spread = (n as f64 * 0.618_033_988_75).fract();
                n += 1;
                let first = now + rp.timing.period.mul_f64(spread);
                tasks.push(tokio::spawn(probe_loop(
                    si,
                    pi,
                    rp,
                    first,
                    result_tx.clone(),
                )));
            }
            let entry = Entry {
                name: set.service,
                machine,
                meta,
                dirty: true,
            };
            let status_exists = store.snapshot().services.contains_key(&entry.name);
            let reports = reports(&entry);
            let grace_ms = set.grace.as_millis() as u64;
            if status_exists {
                store.update(&entry.name, |s| {
                    s.probes = reports;
                    s.required = set.required;
                    s.grace_ms = grace_ms;
                });
            } else {
                let mut status = ServiceStatus::pending(entry.name.clone());
                status.required = set.required;
                status.grace_ms = grace_ms;
                status.probes = reports;
                store.insert(status);
            }
            entries.push(entry);
        }
        drop(result_tx);
        let mut state = Loop {
            store,
            entries,
            decisions: decision_tx,
        };
        if options.start_all {
            for i in 0..state.entries.len() {
                let step = state.entries[i].machine.started(now.into_std());
                state.apply(i, step);
            }
        }
        tasks.push(tokio::spawn(state.run(
            result_rx,
            control_rx,
            options.flush_interval,
        )));
        ProbeRunner {
            control: control_tx,
            decisions: Some(decision_rx),
            tasks,
        }
    }

    /// Tells the runner about a lifecycle event.
    pub fn send(&self, control: Control) {
        let _ = self.control.send(control);
    }

    /// A sender for lifecycle events (for other tasks, e.g. the agent-signal listener).
    pub fn controller(&self) -> mpsc::UnboundedSender<Control> {
        self.control.clone()
    }

    /// The restart decisions; can be taken once.
    pub fn take_decisions(&mut self) -> Option<mpsc::UnboundedReceiver<ServiceDecision>> {
        self.decisions.take()
    }

    /// Stops every probe and the loop.
    pub fn stop(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for ProbeRunner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs one probe on its period, forever.
async fn probe_loop(
    service: usize,
    index: usize,
    mut rp: RunnerProbe,
    first: Instant,
    results: mpsc::Sender<(usize, usize, ProbeOutcome)>,
) {
    let mut interval = tokio::time::interval_at(first, rp.timing.period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let outcome = run_once(rp.probe.as_mut(), rp.timing.timeout).await;
        if results.send((service, index, outcome)).await.is_err() {
            return;
        }
    }
}

/// One check bounded by `timeout`: a check that does not return in time is a
/// [`crate::probe::ProbeStatus::Timeout`], never a hang.
pub async fn run_once(probe: &mut dyn Probe, timeout: Duration) -> ProbeOutcome {
    let start = Instant::now();
    match tokio::time::timeout(timeout, probe.check()).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::timeout(start.elapsed()),
    }
}

fn reports(entry: &Entry) -> Vec<ProbeReport> {
    entry
        .machine
        .probes()
        .iter()
        .zip(&entry.meta)
        .map(|(track, meta)| ProbeReport {
            kind: meta.kind.to_string(),
            target: meta.target.clone(),
            role: meta.timing.role,
            last: track.last.clone(),
            consecutive_failures: track.consecutive_failures,
            consecutive_successes: track.consecutive_successes,
        })
        .collect()
}

struct Loop {
    store: StateStore,
    entries: Vec<Entry>,
    decisions: mpsc::UnboundedSender<ServiceDecision>,
}

impl Loop {
    async fn run(
        mut self,
        mut results: mpsc::Receiver<(usize, usize, ProbeOutcome)>,
        mut control: mpsc::UnboundedReceiver<Control>,
        flush_interval: Duration,
    ) {
        let index: HashMap<String, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        let mut flush = tokio::time::interval(flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut control_open = true;
        loop {
            tokio::select! {
                result = results.recv() => {
                    let Some((si, pi, outcome)) = result else { break };
                    self.result(si, pi, outcome);
                }
                c = control.recv(), if control_open => {
                    match c {
                        Some(c) => self.control(&index, c),
                        None => control_open = false,
                    }
                }
                _ = flush.tick() => {
                    self.flush();
                    self.store.beat();
                }
            }
        }
        self.flush();
    }

    fn result(&mut self, si: usize, pi: usize, outcome: ProbeOutcome) {
        let Some(entry) = self.entries.get_mut(si) else {
            return;
        };
        self.store.observe_probe(ProbeObservation {
            service: entry.name.clone(),
            kind: entry
                .meta
                .get(pi)
                .map(|m| m.kind)
                .unwrap_or("?")
                .to_string(),
            outcome: outcome.clone(),
        });
        let step = entry
            .machine
            .probe_result(pi, outcome, Instant::now().into_std());
        entry.dirty = true;
        self.apply(si, step);
    }

    fn control(&mut self, index: &HashMap<String, usize>, c: Control) {
        let now = Instant::now().into_std();
        let name = match &c {
            Control::Started { service }
            | Control::Restarted { service }
            | Control::Stopped { service, .. }
            | Control::Exited { service, .. }
            | Control::ExtendDeadline { service, .. } => service,
        };
        let Some(&si) = index.get(name) else {
            tracing::debug!(service = %name, "control for a service without probes");
            return;
        };
        let machine = &mut self.entries[si].machine;
        let step = match c {
            Control::Started { .. } => machine.started(now),
            Control::Restarted { .. } => machine.restarted(now),
            Control::Stopped { reason, .. } => machine.stopped(now, &reason),
            Control::Exited { code, one_shot, .. } => machine.exited(now, code, one_shot),
            Control::ExtendDeadline { until, .. } => {
                machine.extend_deadline(until.into_std());
                Step::default()
            }
        };
        self.entries[si].dirty = true;
        self.apply(si, step);
    }

    fn apply(&mut self, si: usize, step: Step) {
        let entry = &mut self.entries[si];
        if let Some(t) = step.transition {
            let reports = reports(entry);
            let restarts = entry.machine.restarts();
            self.store.update(&entry.name, |s| {
                s.probes = reports;
                s.restarts = restarts;
            });
            entry.dirty = false;
            self.store.transition(&entry.name, t.to, t.reason);
        }
        if let Some(decision) = step.decision {
            tracing::warn!(service = %entry.name, ?decision, "probe asks for a restart");
            let _ = self.decisions.send(ServiceDecision {
                service: entry.name.clone(),
                decision,
            });
        }
    }

    fn flush(&mut self) {
        if !self.entries.iter().any(|e| e.dirty) {
            return;
        }
        let updates: Vec<(String, Vec<ProbeReport>)> = self
            .entries
            .iter_mut()
            .filter(|e| e.dirty)
            .map(|e| {
                e.dirty = false;
                (e.name.clone(), reports(e))
            })
            .collect();
        self.store.update_many(|services| {
            for (name, reports) in updates {
                if let Some(s) = services.get_mut(&name) {
                    s.probes = reports;
                }
            }
        });
    }
}

/// Runs every probe of every service once, at the same time, and returns
/// the stack as a snapshot (what `muster status` prints when no muster is
/// running). A service is `ready` when all its probes pass, `unready` when one
/// fails, `pending` when it has no probe that can run here. A probe that cannot
/// be built is an error naming the service and the probe's position.
pub async fn check_once(
    project: &str,
    services: &std::collections::BTreeMap<String, crate::probe::spec::MusterService>,
    base: &crate::probe::ProbeContext,
) -> Result<super::state::StackSnapshot, String> {
    use super::state::{ServiceState, StackSnapshot};
    use crate::probe::spec::ProbeKind;
    use crate::probe::unix_ms;

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
            let probe = crate::probe::build(spec, &ctx)
                .map_err(|e| format!("services.{name}.probes[{i}]: {e}"))?;
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::spec::ProbeRole;
    use crate::probe::{ProbeFuture, ProbeStatus};
    use crate::supervisor::state::ServiceState;
    use std::sync::{Arc, Mutex};

    /// A probe whose answers the test decides (the probe kinds themselves are
    /// tested against real servers in tests/probe_*.rs).
    struct Scripted {
        ok: Arc<Mutex<Option<bool>>>,
    }

    impl Probe for Scripted {
        fn kind(&self) -> &'static str {
            "tcp"
        }
        fn target(&self) -> String {
            "scripted".into()
        }
        fn check(&mut self) -> ProbeFuture<'_> {
            let ok = *self.ok.lock().unwrap();
            Box::pin(async move {
                match ok {
                    Some(true) => ProbeOutcome::ok(Duration::from_micros(50), "up"),
                    Some(false) => ProbeOutcome::fail(Duration::from_micros(50), "down"),
                    None => std::future::pending().await,
                }
            })
        }
    }

    fn timing(failure: u32) -> ProbeTiming {
        ProbeTiming {
            period: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
            success_threshold: 1,
            failure_threshold: failure,
            role: ProbeRole::Readiness,
        }
    }

    async fn settle(secs: u64) {
        for _ in 0..secs * 10 {
            tokio::time::advance(Duration::from_millis(100)).await;
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runner_drives_state_and_reports_timeouts() {
        let store = StateStore::new("t");
        let ok = Arc::new(Mutex::new(Some(false)));
        let runner = ProbeRunner::spawn(
            store.clone(),
            vec![ServiceProbes {
                service: "svc".into(),
                required: true,
                grace: Duration::from_secs(5),
                probes: vec![RunnerProbe {
                    timing: timing(2),
                    probe: Box::new(Scripted { ok: ok.clone() }),
                }],
            }],
            RunnerOptions::default(),
        );
        assert_eq!(
            store.snapshot().services["svc"].state,
            ServiceState::Pending
        );
        runner.send(Control::Started {
            service: "svc".into(),
        });
        settle(4).await;
        // Failing inside the 5 s grace: still starting.
        let snap = store.snapshot();
        assert_eq!(snap.services["svc"].state, ServiceState::Starting);
        assert!(snap.services["svc"].probes[0].last.is_some());
        *ok.lock().unwrap() = Some(true);
        settle(2).await;
        assert_eq!(store.snapshot().services["svc"].state, ServiceState::Ready);
        // A check that never answers is a timeout, and two of them make it unready.
        *ok.lock().unwrap() = None;
        settle(4).await;
        let snap = store.snapshot();
        let svc = &snap.services["svc"];
        assert_eq!(svc.state, ServiceState::Unready, "{svc:?}");
        let last = svc.probes[0].last.as_ref().unwrap();
        assert_eq!(last.status, ProbeStatus::Timeout);
        assert!(last.reason.contains("timed out"), "{}", last.reason);
        let to: Vec<_> = svc.transitions.iter().map(|t| t.to).collect();
        assert_eq!(
            to,
            vec![
                ServiceState::Starting,
                ServiceState::Ready,
                ServiceState::Unready
            ]
        );
        runner.stop();
    }
}
