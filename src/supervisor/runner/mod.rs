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
//!
//! While a service is `starting`, its network probes (http, tcp, redis,
//! nats) do not wait a whole period between runs: they run on a short
//! interval that grows with the time spent starting (see
//! [`start_interval`]), so `up` hands over to the dependents within a few
//! milliseconds of the service answering, and a long start costs a few
//! runs more, not a steady rate. Ready services run on their period.

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
use super::once::run_once;
use super::state::{Cause, ProbeReport, ServiceState, ServiceStatus};
use super::store::{ProbeObservation, StateStore, Writer};
use crate::compose::xmuster::ProbeTiming;
use crate::probe::{Probe, ProbeOutcome};

mod writes;
pub use self::writes::{inbox, Inbox, StateWrites, StatusWrite};

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

/// Lifecycle events the supervisor tells the runner about, and the writes
/// of service state that no machine of the runner decides: the runner is
/// the one writer of service state (see `supervisor/store.rs`).
#[derive(Debug)]
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
        /// Said after the code: ` (OOM-killed at 1.9 GiB of 2 GiB)`, or empty.
        why: String,
    },
    /// The healer gave up on the service (restart budget spent): `failed`.
    GaveUp {
        service: String,
        reason: String,
    },
    /// An agent reported progress: keep its start window open until `until`.
    ExtendDeadline {
        service: String,
        until: Instant,
    },
    /// The effective grace period was re-decided (a new start-up sample, or
    /// the image's size known after its pull): it applies from the service's
    /// next start, and stretches the start window of a service starting now.
    SetGrace {
        service: String,
        grace: Duration,
    },
    /// A state that no machine of the runner decides, written as given, in
    /// the order received: `up`'s states before a container runs (pending
    /// and why, blocked, failed), its `starting` (with `Cause::Adopted`
    /// when nothing started), its `failed` on an exit it judges, and the
    /// states of services without muster probes, which follow what the
    /// engine says (running, healthy, unhealthy, exited, stopped) and what
    /// the healer decides (gave up), from `up` and then from the healer.
    Set {
        service: String,
        to: ServiceState,
        reason: String,
        cause: Option<Cause>,
    },
    /// Writes of services' status that are not transitions (see
    /// [`StatusWrite`]), applied in one snapshot swap.
    Status(Vec<(String, StatusWrite)>),
    /// Answered once every request sent before it is in the store, so the
    /// sender may read the store (the end of `up`).
    Sync(tokio::sync::oneshot::Sender<()>),
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
    store: StateStore,
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
        writer: Writer,
        services: Vec<ServiceProbes>,
        options: RunnerOptions,
    ) -> ProbeRunner {
        ProbeRunner::spawn_on(inbox(writer).1, services, options)
    }

    /// [`Self::spawn`] on a channel made before (writes sent to it already
    /// wait there).
    pub fn spawn_on(
        inbox: Inbox,
        services: Vec<ServiceProbes>,
        options: RunnerOptions,
    ) -> ProbeRunner {
        let Inbox {
            writer,
            tx: control_tx,
            rx: control_rx,
        } = inbox;
        let store = writer.store();
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
                    quick_start: quick_while_starting(rp.probe.kind()),
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
                writer.update(&entry.name, |s| {
                    s.probes = reports;
                    s.required = set.required;
                    s.grace_ms = grace_ms;
                });
            } else {
                let mut status = ServiceStatus::pending(entry.name.clone());
                status.required = set.required;
                status.grace_ms = grace_ms;
                status.probes = reports;
                writer.insert(status);
            }
            entries.push(entry);
        }
        let mut state = Loop {
            store: store.clone(),
            writer,
            entries,
            decisions: decision_tx,
            observations: Vec::new(),
        };
        if options.start_all {
            for i in 0..state.entries.len() {
                let mut step = state.entries[i].machine.started(now.into_std());
                // Running containers taken over, not started: followers
                // (the grace recorder) must not take this for a start-up.
                if let Some(t) = step.transition.as_mut() {
                    t.cause = Some(Cause::Adopted);
                }
                state.apply(i, step);
            }
        }
        let run = state.run(slots, control_rx, options.flush_interval);
        let (tasks, thread) = spawn_loop(run);
        ProbeRunner {
            store,
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

    /// Where everyone else's writes of service state go (this runner is
    /// their one writer).
    pub fn writes(&self) -> StateWrites {
        StateWrites::new(self.store.clone(), self.control.clone())
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

/// The shortest gap between two runs of a network probe of a starting
/// service. A refused connection costs the prober and the target a few tens
/// of microseconds, so even a few services starting at once stay well under
/// a few percent of a core, while a ready service is noticed 2.5 ms after it
/// answers on average.
const START_INTERVAL_MIN: Duration = Duration::from_millis(5);

/// While starting, the gap between runs is the time spent starting so far
/// divided by this (never under [`START_INTERVAL_MIN`], never over the
/// period): noticing readiness then costs at most 1/250 of the start time on
/// top (4 ms after a second, 40 ms after ten), and a start of `T` costs about
/// `250 · ln(T / 1.25 s)` runs after its first 1.25 s (250 runs) instead of a
/// fixed rate for as long as a huge image takes.
const START_INTERVAL_SHARE: u32 = 250;

/// The gap between two runs of a network probe whose service has been
/// starting for `starting_for`; `period` is the probe's own (ready) period.
pub(crate) fn start_interval(starting_for: Duration, period: Duration) -> Duration {
    (starting_for / START_INTERVAL_SHARE)
        .max(START_INTERVAL_MIN)
        .min(period)
}

/// Probe kinds that run on the short start interval while their service is
/// starting: the network probes, whose run is one round trip. exec and
/// docker probes go through the engine (an exec is a process in the
/// container), and agent probes are pushed to the watcher, so they keep
/// their period.
fn quick_while_starting(kind: &str) -> bool {
    matches!(kind, "http" | "tcp" | "redis" | "nats")
}

/// One probe in the scheduler: where its results go, its timing, when it
/// runs next, and the probe itself (`None` while a check is running: the
/// check owns it and hands it back with the outcome).
struct Slot {
    service: usize,
    index: usize,
    /// Runs on [`start_interval`] while its service is starting.
    quick_start: bool,
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
    /// To read, and for the channels that are not service state.
    store: StateStore,
    /// The store's one writer.
    writer: Writer,
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
                    let (si, pi) = (slots[slot].service, slots[slot].index);
                    // The outcome first: a run that made the service ready
                    // schedules the next on the period.
                    self.result(si, pi, outcome);
                    let now = Instant::now();
                    let gap = self.gap(&slots[slot], now);
                    let s = &mut slots[slot];
                    s.probe = Some(probe);
                    s.due = next_due(s.due, gap, now);
                    let next = s.due;
                    due.push(Reverse((next, slot)));
                    if next < wake.deadline() {
                        wake.as_mut().reset(next);
                    }
                }
                () = &mut wake => {
                    // Checks due within their allowance start together: one
                    // wake-up for a batch of checks instead of one each.
                    let now = Instant::now();
                    while let Some(&Reverse((t, slot))) = due.peek() {
                        let s = &slots[slot];
                        let early = if t == s.due { s.early.min(self.gap(s, now) / 40) } else { Duration::ZERO };
                        if t > now + early {
                            break;
                        }
                        due.pop();
                        let s = &mut slots[slot];
                        // An entry left behind when a start moved the slot's
                        // due time earlier is skipped.
                        if t != s.due {
                            continue;
                        }
                        if let Some(probe) = s.probe.take() {
                            running.push(check(slot, probe, s.timeout));
                        }
                    }
                    let next = due.peek().map_or_else(far, |Reverse((t, _))| *t);
                    wake.as_mut().reset(next);
                }
                c = control.recv(), if control_open => {
                    match c {
                        Some(c) => {
                            // A (re)started service's network probes run at
                            // once, then on the start interval.
                            let Some(si) = self.control(&index, c) else { continue };
                            let now = Instant::now();
                            for (i, s) in slots.iter_mut().enumerate() {
                                if s.service == si && s.quick_start && s.probe.is_some() && s.due > now {
                                    s.due = now;
                                    due.push(Reverse((now, i)));
                                    wake.as_mut().reset(now);
                                }
                            }
                        }
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

    /// The gap to the slot's next run: its period, or the start interval
    /// while its service is starting.
    fn gap(&self, slot: &Slot, now: Instant) -> Duration {
        if !slot.quick_start {
            return slot.period;
        }
        let machine = &self.entries[slot.service].machine;
        let started = match (machine.state(), machine.started_at()) {
            (ServiceState::Starting, Some(at)) => at,
            _ => return slot.period,
        };
        let starting_for = now.into_std().saturating_duration_since(started);
        start_interval(starting_for, slot.period)
    }

    /// Applies a lifecycle event; the service's index when it (re)started.
    fn control(&mut self, index: &HashMap<String, usize>, c: Control) -> Option<usize> {
        let c = match c {
            Control::Set {
                service,
                to,
                reason,
                cause,
            } => {
                self.writer.transition_caused(&service, to, reason, cause);
                return None;
            }
            Control::Status(writes) => {
                self.write_status(writes);
                return None;
            }
            Control::Sync(done) => {
                let _ = done.send(());
                return None;
            }
            c => c,
        };
        let now = Instant::now().into_std();
        let started = matches!(c, Control::Started { .. } | Control::Restarted { .. });
        let name = match &c {
            Control::Started { service }
            | Control::Restarted { service }
            | Control::Stopped { service, .. }
            | Control::Exited { service, .. }
            | Control::GaveUp { service, .. }
            | Control::ExtendDeadline { service, .. }
            | Control::SetGrace { service, .. } => service,
            Control::Set { .. } | Control::Status(_) | Control::Sync(_) => return None,
        };
        let Some(&si) = index.get(name) else {
            tracing::debug!(service = %name, "control for a service without probes");
            return None;
        };
        let machine = &mut self.entries[si].machine;
        let step = match c {
            Control::Started { .. } => machine.started(now),
            Control::Restarted { .. } => machine.restarted(now),
            Control::Stopped { reason, .. } => machine.stopped(now, &reason),
            Control::Exited {
                code,
                one_shot,
                why,
                ..
            } => machine.exited(now, code, one_shot, &why),
            Control::GaveUp { reason, .. } => machine.gave_up(now, &reason),
            Control::ExtendDeadline { until, .. } => {
                machine.extend_deadline(until.into_std());
                Step::default()
            }
            Control::Set { .. } | Control::Status(_) | Control::Sync(_) => Step::default(),
            Control::SetGrace { grace, .. } => {
                machine.set_grace(grace);
                let grace_ms = grace.as_millis() as u64;
                self.writer
                    .update(&self.entries[si].name, |s| s.grace_ms = grace_ms);
                Step::default()
            }
        };
        self.entries[si].dirty = true;
        self.apply(si, step);
        started.then_some(si)
    }

    fn apply(&mut self, si: usize, step: Step) {
        let entry = &mut self.entries[si];
        if let Some(t) = step.transition {
            let reports = reports(entry);
            let restarts = entry.machine.restarts();
            self.writer.update(&entry.name, |s| {
                s.probes = reports;
                s.restarts = restarts;
            });
            entry.dirty = false;
            self.writer
                .transition_caused(&entry.name, t.to, t.reason, t.cause);
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
        self.writer.update_many(|services| {
            for e in entries.iter_mut().filter(|e| e.dirty) {
                e.dirty = false;
                if let Some(s) = services.get_mut(&e.name) {
                    refresh_reports(e, &mut s.probes);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests;
