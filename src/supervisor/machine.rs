//! The pure per-service state machine. No I/O, no clock of its own: every
//! event carries the `Instant` it happened at, so tests drive time by hand.
//!
//! ```text
//! pending -> starting -> (grace) -> ready <-> unready -> failed
//!                    \-> failed          (+ stopped, completed)
//! ```
//!
//! Probe roles follow Kubernetes:
//! - `startup` probes gate everything else: until every startup probe has
//!   passed (`success_threshold` successes in a row), readiness and liveness
//!   results are recorded but not acted on.
//! - `readiness` probes decide ready / unready.
//! - `liveness` probes that fail `failure_threshold` times in a row ask the
//!   supervisor to restart the container ([`Decision::Restart`]); the machine
//!   never restarts anything itself.
//!
//! The start window (`starting` lasts through the effective grace period,
//! extendable by agents that report progress): failures inside it do not count
//! toward any `failure_threshold`, so they never mark a service failed or
//! unready. After it, `failure_threshold` failures in a row count as usual: a
//! service still `starting` then becomes `failed`.

use std::time::{Duration, Instant};

use crate::compose::xmuster::{ProbeRole, ProbeTiming};
use crate::probe::ProbeOutcome;
use crate::supervisor::state::{Cause, ServiceState};

/// What the machine asks the supervisor to do; acted on outside the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Restart the service's container (a liveness or startup probe gave up).
    Restart { reason: String },
}

/// One state change, stamped with the `Instant` of the event that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineTransition {
    pub from: ServiceState,
    pub to: ServiceState,
    pub at: Instant,
    pub reason: String,
    pub cause: Option<Cause>,
}

/// What one event changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub transition: Option<MachineTransition>,
    pub decision: Option<Decision>,
}

impl Step {
    fn none() -> Step {
        Step::default()
    }
}

/// Counters and last result of one probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeTrack {
    pub role: ProbeRole,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    pub consecutive_successes: u32,
    /// Failures in a row that count (outside the start window).
    pub consecutive_failures: u32,
    /// Whether the probe is passing after thresholds (starts false, as in Kubernetes).
    pub passing: bool,
    pub last: Option<ProbeOutcome>,
}

impl ProbeTrack {
    fn new(timing: &ProbeTiming) -> ProbeTrack {
        ProbeTrack {
            role: timing.role,
            success_threshold: timing.success_threshold.max(1),
            failure_threshold: timing.failure_threshold.max(1),
            consecutive_successes: 0,
            consecutive_failures: 0,
            passing: false,
            last: None,
        }
    }

    fn reset(&mut self) {
        self.consecutive_successes = 0;
        self.consecutive_failures = 0;
        self.passing = false;
    }

    fn failed_out(&self) -> bool {
        self.consecutive_failures >= self.failure_threshold
    }

    fn last_reason(&self) -> String {
        self.last
            .as_ref()
            .map(|o| o.reason.clone())
            .unwrap_or_default()
    }
}

/// The state of one service.
#[derive(Debug, Clone)]
pub struct ServiceMachine {
    state: ServiceState,
    since: Instant,
    grace: Duration,
    window_end: Option<Instant>,
    /// When the container last started (the start window opened).
    started_at: Option<Instant>,
    startup_passed: bool,
    probes: Vec<ProbeTrack>,
    transitions: Vec<MachineTransition>,
    restarts: u32,
    /// The container exited and has not started again: nothing it answered
    /// before counts, and no probe result can make the service ready (a
    /// probe may still reach something else on that port, or pass on a
    /// stale view for a moment).
    exited: bool,
}

/// Transitions kept per machine.
const HISTORY: usize = 64;

impl ServiceMachine {
    /// A `pending` service with these probes and this grace (start) period.
    pub fn new(probes: &[ProbeTiming], grace: Duration, now: Instant) -> ServiceMachine {
        ServiceMachine {
            state: ServiceState::Pending,
            since: now,
            grace,
            window_end: None,
            started_at: None,
            startup_passed: false,
            probes: probes.iter().map(ProbeTrack::new).collect(),
            transitions: Vec::new(),
            restarts: 0,
            exited: false,
        }
    }

    pub fn state(&self) -> ServiceState {
        self.state
    }

    /// When the current state was entered.
    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn probes(&self) -> &[ProbeTrack] {
        &self.probes
    }

    /// Every transition so far (the last 64), oldest first.
    pub fn transitions(&self) -> &[MachineTransition] {
        &self.transitions
    }

    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// End of the start window, when one is running.
    pub fn window_end(&self) -> Option<Instant> {
        self.window_end
    }

    /// When the container last started (a `starting` service's start).
    pub fn started_at(&self) -> Option<Instant> {
        self.started_at
    }

    /// Probe failures at `now` do not count.
    pub fn in_start_window(&self, now: Instant) -> bool {
        self.window_end.is_some_and(|end| now < end)
    }

    /// Changes the grace period (re-tuned from history, or re-decided once
    /// the image's size is known after its pull). It applies from the next
    /// start; a service `starting` now gets its window stretched to `grace`
    /// from when it started (never shortened: a window already promised is
    /// kept, and an agent's extended deadline stays).
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
        if self.state == ServiceState::Starting {
            if let (Some(end), Some(started)) = (self.window_end, self.started_at) {
                self.window_end = Some(end.max(started + grace));
            }
        }
    }

    /// The container started: `starting`, with a fresh start window.
    pub fn started(&mut self, now: Instant) -> Step {
        self.exited = false;
        self.window_end = Some(now + self.grace);
        self.started_at = Some(now);
        for p in &mut self.probes {
            p.reset();
        }
        self.startup_passed = !self.probes.iter().any(|p| p.role == ProbeRole::Startup);
        let mut step = self.move_to(ServiceState::Starting, now, "container started");
        if self.startup_passed && !self.probes.iter().any(|p| p.role == ProbeRole::Readiness) {
            // Nothing decides readiness: running is ready.
            let reason = if self.probes.is_empty() {
                "running (no probes)"
            } else {
                "running (no readiness probes)"
            };
            step = self.move_to(ServiceState::Ready, now, reason);
        }
        step
    }

    /// The supervisor restarted the container (after a [`Decision::Restart`] or on its own).
    pub fn restarted(&mut self, now: Instant) -> Step {
        self.restarts += 1;
        self.started(now)
    }

    /// An agent reported progress: keep the start window open at least until `until`.
    pub fn extend_deadline(&mut self, until: Instant) {
        match self.window_end {
            Some(end) if end >= until => {}
            _ => self.window_end = Some(until),
        }
    }

    /// The container was stopped on purpose.
    pub fn stopped(&mut self, now: Instant, reason: &str) -> Step {
        self.window_end = None;
        self.move_to(ServiceState::Stopped, now, reason)
    }

    /// The container exited by itself. A one-shot service that exits 0 is `completed`.
    /// `why` follows the code in the reason (` (OOM-killed at 1.9 GiB of 2 GiB)`).
    pub fn exited(&mut self, now: Instant, code: i64, one_shot: bool, why: &str) -> Step {
        self.window_end = None;
        // What the probes said was about the container that is gone.
        self.exited = true;
        for p in &mut self.probes {
            p.reset();
        }
        if code == 0 && one_shot {
            self.move_to(ServiceState::Completed, now, "exited 0")
        } else {
            self.move_to(
                ServiceState::Failed,
                now,
                &format!("container exited with code {code}{why}"),
            )
        }
    }

    /// The supervisor gave up on the service (its restart budget is spent):
    /// `failed` with that reason. Unlike an exit, the container still runs,
    /// so its probes passing again make it `ready` (and recovered).
    pub fn gave_up(&mut self, now: Instant, reason: &str) -> Step {
        self.move_to(ServiceState::Failed, now, reason)
    }

    /// A dependency failed: the service is held back.
    pub fn blocked(&mut self, now: Instant, reason: &str) -> Step {
        self.move_to(ServiceState::Blocked, now, reason)
    }

    /// One probe run finished. `index` is the probe's position in the list given to `new`.
    pub fn probe_result(&mut self, index: usize, outcome: ProbeOutcome, now: Instant) -> Step {
        let in_window = self.in_start_window(now);
        let Some(track) = self.probes.get_mut(index) else {
            return Step::none();
        };
        let ok = outcome.is_ok();
        // The target's own word that it is starting again: not passing at
        // once (a flaky failure would wait for its threshold).
        let restarting = !ok && outcome.restarting;
        track.last = Some(outcome);
        if ok {
            track.consecutive_successes = track.consecutive_successes.saturating_add(1);
            track.consecutive_failures = 0;
            if track.consecutive_successes >= track.success_threshold {
                track.passing = true;
            }
        } else {
            track.consecutive_successes = 0;
            if restarting {
                track.passing = false;
            }
            if !in_window {
                track.consecutive_failures = track.consecutive_failures.saturating_add(1);
                if track.consecutive_failures >= track.failure_threshold {
                    track.passing = false;
                }
            }
        }
        if !matches!(
            self.state,
            ServiceState::Starting
                | ServiceState::Ready
                | ServiceState::Unready
                | ServiceState::Failed
        ) {
            // Not running (pending, stopped, completed, blocked): results are kept, not acted on.
            return Step::none();
        }
        if self.exited {
            // `failed` by its exit: only a new start moves it again.
            return Step::none();
        }
        let role = self.probes[index].role;
        match role {
            ProbeRole::Startup => {
                if self.startup_passed {
                    return Step::none();
                }
                if self
                    .probes
                    .iter()
                    .filter(|p| p.role == ProbeRole::Startup)
                    .all(|p| p.passing)
                {
                    self.startup_passed = true;
                    return self.evaluate(now);
                }
                self.give_up_if_failed_out(
                    index,
                    now,
                    "startup probe failed",
                    " after the start period",
                )
            }
            ProbeRole::Liveness => {
                if !self.startup_passed {
                    return Step::none();
                }
                self.give_up_if_failed_out(index, now, "liveness probe failed", "")
            }
            ProbeRole::Readiness => {
                if !self.startup_passed {
                    return Step::none();
                }
                if restarting && matches!(self.state, ServiceState::Ready | ServiceState::Unready) {
                    // Back to `starting` with a fresh start window (an agent
                    // deadline extends it further): not ready, and no restart
                    // while it is open.
                    let until = now + self.grace;
                    if self.window_end.is_none_or(|end| end < until) {
                        self.window_end = Some(until);
                    }
                    let reason = format!(
                        "the agent is starting again: {}",
                        self.probes[index].last_reason()
                    );
                    return self.move_to_caused(
                        ServiceState::Starting,
                        now,
                        &reason,
                        Some(Cause::AgentRestarting),
                    );
                }
                self.evaluate(now)
            }
        }
    }

    /// Readiness after the startup gate is open.
    fn evaluate(&mut self, now: Instant) -> Step {
        // Runs on every probe result: no allocation unless something changes.
        let readiness = || {
            self.probes
                .iter()
                .filter(|p| p.role == ProbeRole::Readiness)
        };
        let all_passing = readiness().all(|p| p.passing);
        let failed_out = readiness()
            .find(|p| p.failed_out())
            .map(|p| p.last_reason());
        let ok_reason = || {
            let details: Vec<String> = readiness()
                .filter_map(|p| p.last.as_ref().map(|o| o.reason.clone()))
                .filter(|r| !r.is_empty())
                .collect();
            if details.is_empty() {
                "probes passed".to_string()
            } else {
                details.join("; ")
            }
        };
        match self.state {
            ServiceState::Starting => {
                if all_passing {
                    let reason = ok_reason();
                    self.window_end = None;
                    self.move_to(ServiceState::Ready, now, &reason)
                } else if let Some(reason) = failed_out {
                    // As Kubernetes' readiness probes: a failing readiness probe
                    // makes the service unready (up keeps waiting until its
                    // --wait-timeout), never failed; only startup and liveness
                    // probes give up on a container.
                    self.move_to(
                        ServiceState::Unready,
                        now,
                        &format!("not ready after the start period: {reason}"),
                    )
                } else {
                    Step::none()
                }
            }
            ServiceState::Ready => match failed_out {
                Some(reason) => self.move_to(ServiceState::Unready, now, &reason),
                None => Step::none(),
            },
            ServiceState::Unready | ServiceState::Failed => {
                if all_passing {
                    let reason = ok_reason();
                    self.move_to(ServiceState::Ready, now, &reason)
                } else {
                    Step::none()
                }
            }
            _ => Step::none(),
        }
    }

    /// A startup or liveness probe past its failure threshold: the service is
    /// failed and a restart is asked for, once per threshold (the counter
    /// restarts, as the restart resets everything).
    fn give_up_if_failed_out(
        &mut self,
        index: usize,
        now: Instant,
        what: &str,
        when: &str,
    ) -> Step {
        let track = &mut self.probes[index];
        if !track.failed_out() {
            return Step::none();
        }
        let reason = format!(
            "{what} {} times{when}: {}",
            track.consecutive_failures,
            track.last_reason()
        );
        track.consecutive_failures = 0;
        let mut step = self.move_to(ServiceState::Failed, now, &reason);
        step.decision = Some(Decision::Restart { reason });
        step
    }

    fn move_to(&mut self, to: ServiceState, now: Instant, reason: &str) -> Step {
        self.move_to_caused(to, now, reason, None)
    }

    fn move_to_caused(
        &mut self,
        to: ServiceState,
        now: Instant,
        reason: &str,
        cause: Option<Cause>,
    ) -> Step {
        if self.state == to {
            return Step::none();
        }
        let t = MachineTransition {
            from: self.state,
            to,
            at: now,
            reason: reason.to_string(),
            cause,
        };
        self.state = to;
        self.since = now;
        self.transitions.push(t.clone());
        if self.transitions.len() > HISTORY {
            self.transitions.remove(0);
        }
        Step {
            transition: Some(t),
            decision: None,
        }
    }
}

#[cfg(test)]
mod tests;
