//! The probe runner: runs every probe of every service on its period, each run
//! bounded by `tokio::time::timeout(timeout)`, feeds the results into the
//! per-service [`ServiceMachine`]s and writes through [`StateStore`].
//!
//! One task runs everything: it owns the machines (so they need no locks) and
//! every probe, keeps one timer for the probe due next (a heap of due times,
//! not a timer and a task per probe) and polls the checks that are running
//! itself, so a probe run wakes one task instead of a probe task, a channel
//! and the loop. Transitions are written at once; probe reports (last
//! outcome, latency, streaks) are written in batches every `flush_interval`
//! with one snapshot swap, so a thousand probes a second do not copy the
//! snapshot a thousand times a second. [`Decision`]s (restart a container)
//! go out on a channel for the supervisor to act on.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::machine::{Decision, ServiceMachine, Step};
use super::state::{ProbeReport, ServiceStatus};
use super::store::{ProbeObservation, StateStore};
use crate::compose::xmuster::ProbeTiming;
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
    /// The effective grace period was re-tuned (a new start-up sample): it
    /// applies from the service's next start.
    SetGrace {
        service: String,
        grace: Duration,
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
    /// Dropped to end the probe thread (when the runner has one).
    _thread: Option<tokio::sync::oneshot::Sender<()>>,
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
        let now = Instant::now();
        let total: usize = services.iter().map(|s| s.probes.len()).sum();
        let mut entries = Vec::with_capacity(services.len());
        let mut slots = Vec::with_capacity(total);
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
                slots.push(Slot {
                    service: si,
                    index: pi,
                    period: rp.timing.period,
                    timeout: rp.timing.timeout,
                    early: allowed_early(rp.timing.period),
                    due: first,
                    probe: Some(rp.probe),
                });
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
        let mut state = Loop {
            store,
            entries,
            decisions: decision_tx,
            observations: Vec::new(),
        };
        if options.start_all {
            for i in 0..state.entries.len() {
                let step = state.entries[i].machine.started(now.into_std());
                state.apply(i, step);
            }
        }
        let run = state.run(slots, control_rx, options.flush_interval);
        let (tasks, thread) = spawn_loop(run);
        ProbeRunner {
            control: control_tx,
            decisions: Some(decision_rx),
            tasks,
            _thread: thread,
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

/// Starts the runner's loop. Under a multi-thread runtime it gets a thread
/// with a single-threaded runtime of its own: the checks, the connections they
/// open (the Redis connection's driver task too) and the loop then wake one
/// thread, instead of waking idle workers of the shared runtime over and over
/// (a thousand probes a second spent more CPU in those wake-ups than in the
/// checks). Elsewhere (tests on a current-thread runtime, with paused time)
/// it is a task of the current runtime.
fn spawn_loop(
    run: impl Future<Output = ()> + Send + 'static,
) -> (
    Vec<JoinHandle<()>>,
    Option<tokio::sync::oneshot::Sender<()>>,
) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    type Run = Pin<Box<dyn Future<Output = ()> + Send>>;
    let run: Run = Box::pin(run);
    let multi =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if !multi {
        return (vec![tokio::spawn(run)], None);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the probe runtime; probes run on the shared runtime");
            return (vec![tokio::spawn(run)], None);
        }
    };
    let (hand_over, take) = std::sync::mpsc::channel::<Run>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("muster-probes".into())
        .spawn(move || {
            let Ok(run) = take.recv() else { return };
            // Runs the loop until the runner is dropped; dropping the runtime
            // then ends every check and every connection the probes opened.
            rt.block_on(async move {
                tokio::select! {
                    () = run => {}
                    _ = stopped => {}
                }
            });
        });
    if let Err(e) = thread {
        tracing::warn!(error = %e, "cannot start the probe thread; probes run on the shared runtime");
        return (vec![tokio::spawn(run)], None);
    }
    match hand_over.send(run) {
        Ok(()) => (Vec::new(), Some(stop)),
        Err(std::sync::mpsc::SendError(run)) => (vec![tokio::spawn(run)], None),
    }
}

/// Checks due this close together start in the same wake-up of the runner,
/// so a check may start up to this much before it is due (and never more
/// than 1/40 of its own period). The period from one run to the next is
/// kept, as each next run is reckoned from when the last was due.
///
/// Why 25 ms: a thousand probes a second then cost 40 wake-ups a second
/// instead of a thousand, the responses of a batch come back in a few
/// `epoll_wait`s, and Redis probes of one server go out in one write. On the
/// probe_load bench this took the runner from 4.1 % to 2.7 % of a core
/// (5 ms batches) at a price of ~0.3 ms more latency per check; Kubernetes'
/// own probes start with far more jitter than that.
const MAX_EARLY: Duration = Duration::from_millis(25);

/// How early a check with this period may start to join a batch.
fn allowed_early(period: Duration) -> Duration {
    MAX_EARLY.min(period / 40)
}

/// One probe in the scheduler: where its results go, its timing, when it
/// runs next, and the probe itself (`None` while a check is running: the
/// check owns it and hands it back with the outcome).
struct Slot {
    service: usize,
    index: usize,
    period: Duration,
    timeout: Duration,
    /// How early the check may start to join a batch (see [`MAX_EARLY`]).
    early: Duration,
    /// When the running (or next) check was due.
    due: Instant,
    probe: Option<Box<dyn Probe>>,
}

/// A running check: gives back the slot number, the probe and the outcome.
type Check = Pin<Box<dyn Future<Output = (usize, Box<dyn Probe>, ProbeOutcome)> + Send>>;

fn check(slot: usize, mut probe: Box<dyn Probe>, timeout: Duration) -> Check {
    Box::pin(async move {
        let outcome = run_once(probe.as_mut(), timeout).await;
        (slot, probe, outcome)
    })
}

/// When a check that was due at `due` and finished at `now` runs next: one
/// period after it was due, or at once when that has passed already (the
/// period is a gap between runs, never a burst to catch up; as
/// `MissedTickBehavior::Delay`).
fn next_due(due: Instant, period: Duration, now: Instant) -> Instant {
    (due + period).max(now)
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

/// Brings `out` up to date with the entry's probes, reusing what it holds
/// (the store keeps a thousand reports; a flush should not rebuild them all).
fn refresh_reports(entry: &Entry, out: &mut Vec<ProbeReport>) {
    let same_probes = out.len() == entry.meta.len()
        && out
            .iter()
            .zip(&entry.meta)
            .all(|(r, m)| r.kind == m.kind && r.target == m.target);
    if !same_probes {
        *out = reports(entry);
        return;
    }
    for (r, track) in out.iter_mut().zip(entry.machine.probes()) {
        r.consecutive_failures = track.consecutive_failures;
        r.consecutive_successes = track.consecutive_successes;
        match (&mut r.last, &track.last) {
            (Some(dst), Some(src)) => {
                dst.status = src.status;
                dst.reason.clone_from(&src.reason);
                dst.latency = src.latency;
                dst.at_ms = src.at_ms;
            }
            (dst, src) => dst.clone_from(src),
        }
    }
}

struct Loop {
    store: StateStore,
    entries: Vec<Entry>,
    decisions: mpsc::UnboundedSender<ServiceDecision>,
    /// Probe runs for metrics followers, sent at the next flush.
    observations: Vec<ProbeObservation>,
}

impl Loop {
    async fn run(
        mut self,
        mut slots: Vec<Slot>,
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
        // Due times, earliest first, and one timer for the earliest.
        let mut due: BinaryHeap<Reverse<(Instant, usize)>> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| Reverse((s.due, i)))
            .collect();
        let far = || Instant::now() + Duration::from_secs(86_400 * 365);
        let wake = tokio::time::sleep_until(due.peek().map_or_else(far, |Reverse((t, _))| *t));
        tokio::pin!(wake);
        let mut running: FuturesUnordered<Check> = FuturesUnordered::new();
        loop {
            tokio::select! {
                Some((slot, probe, outcome)) = running.next(), if !running.is_empty() => {
                    let s = &mut slots[slot];
                    s.probe = Some(probe);
                    s.due = next_due(s.due, s.period, Instant::now());
                    let (si, pi, next) = (s.service, s.index, s.due);
                    due.push(Reverse((next, slot)));
                    if next < wake.deadline() {
                        wake.as_mut().reset(next);
                    }
                    self.result(si, pi, outcome);
                }
                () = &mut wake => {
                    // Checks due within their allowance start together: one
                    // wake-up for a batch of checks instead of one each.
                    let now = Instant::now();
                    while let Some(&Reverse((t, slot))) = due.peek() {
                        if t > now + slots[slot].early {
                            break;
                        }
                        due.pop();
                        let s = &mut slots[slot];
                        if let Some(probe) = s.probe.take() {
                            running.push(check(slot, probe, s.timeout));
                        }
                    }
                    let next = due.peek().map_or_else(far, |Reverse((t, _))| *t);
                    wake.as_mut().reset(next);
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
    }

    fn result(&mut self, si: usize, pi: usize, outcome: ProbeOutcome) {
        let Some(entry) = self.entries.get_mut(si) else {
            return;
        };
        if self.store.probe_runs_followed() {
            self.observations.push(ProbeObservation {
                service: entry.name.clone(),
                kind: entry
                    .meta
                    .get(pi)
                    .map(|m| m.kind)
                    .unwrap_or("?")
                    .to_string(),
                outcome: outcome.clone(),
            });
        }
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
            | Control::ExtendDeadline { service, .. }
            | Control::SetGrace { service, .. } => service,
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
            Control::SetGrace { grace, .. } => {
                machine.set_grace(grace);
                let grace_ms = grace.as_millis() as u64;
                self.store
                    .update(&self.entries[si].name, |s| s.grace_ms = grace_ms);
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
        // Metrics followers get the runs in one burst per flush: one wake-up
        // of the follower, not one per run.
        for observation in self.observations.drain(..) {
            self.store.observe_probe(observation);
        }
        if !self.entries.iter().any(|e| e.dirty) {
            return;
        }
        let entries = &mut self.entries;
        self.store.update_many(|services| {
            for e in entries.iter_mut().filter(|e| e.dirty) {
                e.dirty = false;
                if let Some(s) = services.get_mut(&e.name) {
                    refresh_reports(e, &mut s.probes);
                }
            }
        });
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::xmuster::ProbeRole;
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

    /// One service `svc` with one scripted readiness probe (failure_threshold 2).
    fn scripted_service(ok: &Arc<Mutex<Option<bool>>>, grace: Duration) -> Vec<ServiceProbes> {
        vec![ServiceProbes {
            service: "svc".into(),
            required: true,
            grace,
            probes: vec![RunnerProbe {
                timing: timing(2),
                probe: Box::new(Scripted { ok: ok.clone() }),
            }],
        }]
    }

    async fn settle(secs: u64) {
        for _ in 0..secs * 10 {
            tokio::time::advance(Duration::from_millis(100)).await;
            tokio::task::yield_now().await;
        }
    }

    /// Counts its runs; each run takes `takes` (of paused tokio time).
    struct Counting {
        runs: Arc<Mutex<Vec<tokio::time::Instant>>>,
        takes: Duration,
    }

    impl Probe for Counting {
        fn kind(&self) -> &'static str {
            "tcp"
        }
        fn target(&self) -> String {
            "counting".into()
        }
        fn check(&mut self) -> ProbeFuture<'_> {
            self.runs.lock().unwrap().push(tokio::time::Instant::now());
            let takes = self.takes;
            Box::pin(async move {
                tokio::time::sleep(takes).await;
                ProbeOutcome::ok(takes, "up")
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_probe_runs_once_per_period_and_a_slow_one_never_bursts() {
        let store = StateStore::new("t");
        let mut services = Vec::new();
        let mut counters = Vec::new();
        for (i, (period_ms, takes_ms)) in [(1000, 10), (1000, 10), (300, 5), (500, 1200)]
            .into_iter()
            .enumerate()
        {
            let runs = Arc::new(Mutex::new(Vec::new()));
            counters.push((period_ms, takes_ms, runs.clone()));
            let mut t = timing(3);
            t.period = Duration::from_millis(period_ms);
            t.timeout = Duration::from_secs(5);
            services.push(ServiceProbes {
                service: format!("svc{i}"),
                required: true,
                grace: Duration::ZERO,
                probes: vec![RunnerProbe {
                    timing: t,
                    probe: Box::new(Counting {
                        runs,
                        takes: Duration::from_millis(takes_ms),
                    }),
                }],
            });
        }
        let runner = ProbeRunner::spawn(store.clone(), services, RunnerOptions::default());
        settle(10).await;
        for (period_ms, takes_ms, runs) in &counters {
            let runs = runs.lock().unwrap();
            let gaps: Vec<u128> = runs.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
            // A run starts one period after the previous one was due, or right
            // after it finished when it took longer than the period.
            let want = (*period_ms).max(*takes_ms) as u128;
            assert!(
                gaps.iter().all(|g| g.abs_diff(want) <= 100),
                "period {period_ms} ms, run {takes_ms} ms: gaps {gaps:?}"
            );
            let expected = 10_000 / want as usize;
            assert!(
                runs.len().abs_diff(expected) <= 1,
                "period {period_ms} ms: {} runs in 10 s, want about {expected}",
                runs.len()
            );
        }
        runner.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn checks_due_close_together_start_in_one_wake_up() {
        let store = StateStore::new("t");
        let runs = Arc::new(Mutex::new(Vec::new()));
        let services = (0..200)
            .map(|i| ServiceProbes {
                service: format!("svc{i}"),
                required: true,
                grace: Duration::ZERO,
                probes: vec![RunnerProbe {
                    timing: timing(3),
                    probe: Box::new(Counting {
                        runs: runs.clone(),
                        takes: Duration::from_millis(1),
                    }),
                }],
            })
            .collect();
        let start = tokio::time::Instant::now();
        let runner = ProbeRunner::spawn(store, services, RunnerOptions::default());
        settle(5).await;
        runner.stop();
        let runs = runs.lock().unwrap();
        // Every probe still runs once a second...
        assert!(runs.len().abs_diff(1000) <= 200, "{} runs", runs.len());
        // ...but in batches: at most one start instant per 25 ms window of
        // the 5 s (plus the first), not one per check.
        let mut starts: Vec<_> = runs.iter().map(|t| *t - start).collect();
        starts.dedup();
        assert!(
            starts.len() <= 5 * 40 + 1,
            "{} distinct start instants for {} runs",
            starts.len(),
            runs.len()
        );
        // The allowance: 25 ms, or 1/40 of a shorter period.
        assert_eq!(allowed_early(Duration::from_secs(1)), MAX_EARLY);
        assert_eq!(
            allowed_early(Duration::from_millis(200)),
            Duration::from_millis(5)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_re_tuned_grace_applies_from_the_next_start() {
        let store = StateStore::new("t");
        let ok = Arc::new(Mutex::new(Some(false)));
        let runner = ProbeRunner::spawn(
            store.clone(),
            scripted_service(&ok, Duration::from_secs(30)),
            RunnerOptions::default(),
        );
        runner.send(Control::SetGrace {
            service: "svc".into(),
            grace: Duration::from_secs(2),
        });
        settle(1).await;
        assert_eq!(store.snapshot().services["svc"].grace_ms, 2_000);
        runner.send(Control::Started {
            service: "svc".into(),
        });
        // Failing past the new 2 s window (not the old 30 s): unready.
        settle(5).await;
        let snap = store.snapshot();
        assert_eq!(
            snap.services["svc"].state,
            ServiceState::Unready,
            "{snap:?}"
        );
        runner.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn runner_drives_state_and_reports_timeouts() {
        let store = StateStore::new("t");
        let ok = Arc::new(Mutex::new(Some(false)));
        let runner = ProbeRunner::spawn(
            store.clone(),
            scripted_service(&ok, Duration::from_secs(5)),
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
