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
mod tests {
    use super::*;

    fn timing(role: ProbeRole, success: u32, failure: u32) -> ProbeTiming {
        ProbeTiming {
            role,
            success_threshold: success,
            failure_threshold: failure,
            ..ProbeTiming::default()
        }
    }

    fn ok() -> ProbeOutcome {
        ProbeOutcome::ok(Duration::from_micros(100), "PONG")
    }

    fn fail(reason: &str) -> ProbeOutcome {
        ProbeOutcome::fail(Duration::from_micros(100), reason)
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn success_threshold_is_honoured() {
        let t0 = Instant::now();
        let mut m = ServiceMachine::new(&[timing(ProbeRole::Readiness, 3, 3)], Duration::ZERO, t0);
        assert_eq!(m.state(), ServiceState::Pending);
        m.started(t0);
        assert_eq!(m.state(), ServiceState::Starting);
        m.probe_result(0, ok(), secs(t0, 1));
        m.probe_result(0, ok(), secs(t0, 2));
        assert_eq!(m.state(), ServiceState::Starting, "2 of 3 successes");
        // A failure resets the success streak.
        m.probe_result(0, fail("x"), secs(t0, 3));
        m.probe_result(0, ok(), secs(t0, 4));
        m.probe_result(0, ok(), secs(t0, 5));
        assert_eq!(m.state(), ServiceState::Starting);
        let step = m.probe_result(0, ok(), secs(t0, 6));
        let t = step.transition.expect("becomes ready");
        assert_eq!(
            (t.from, t.to),
            (ServiceState::Starting, ServiceState::Ready)
        );
        assert_eq!(t.at, secs(t0, 6));
        assert_eq!(t.reason, "PONG");
        assert_eq!(m.since(), secs(t0, 6));
    }

    #[test]
    fn failure_threshold_is_honoured() {
        let t0 = Instant::now();
        let mut m = ServiceMachine::new(&[timing(ProbeRole::Readiness, 1, 3)], Duration::ZERO, t0);
        m.started(t0);
        m.probe_result(0, ok(), secs(t0, 1));
        assert_eq!(m.state(), ServiceState::Ready);
        m.probe_result(0, fail("refused"), secs(t0, 2));
        m.probe_result(0, fail("refused"), secs(t0, 3));
        assert_eq!(m.state(), ServiceState::Ready, "2 of 3 failures");
        // A success resets the failure streak.
        m.probe_result(0, ok(), secs(t0, 4));
        m.probe_result(0, fail("refused"), secs(t0, 5));
        m.probe_result(0, fail("refused"), secs(t0, 6));
        assert_eq!(m.state(), ServiceState::Ready);
        let step = m.probe_result(0, fail("connection refused"), secs(t0, 7));
        let t = step.transition.expect("becomes unready");
        assert_eq!((t.from, t.to), (ServiceState::Ready, ServiceState::Unready));
        assert_eq!(t.reason, "connection refused");
        assert!(step.decision.is_none(), "readiness never restarts");
        // Recovery needs success_threshold successes.
        let step = m.probe_result(0, ok(), secs(t0, 8));
        assert_eq!(step.transition.unwrap().to, ServiceState::Ready);
        let states: Vec<_> = m.transitions().iter().map(|t| t.to).collect();
        assert_eq!(
            states,
            vec![
                ServiceState::Starting,
                ServiceState::Ready,
                ServiceState::Unready,
                ServiceState::Ready
            ]
        );
    }

    #[test]
    fn failures_inside_the_start_window_do_not_count() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(30);
        let mut m = ServiceMachine::new(&[timing(ProbeRole::Readiness, 1, 3)], grace, t0);
        m.started(t0);
        for s in 1..30 {
            let step = m.probe_result(0, fail("loading"), secs(t0, s));
            assert!(
                step.transition.is_none(),
                "no transition at {s}s inside the window"
            );
        }
        assert_eq!(m.state(), ServiceState::Starting);
        assert_eq!(m.probes()[0].consecutive_failures, 0);
        // After the window, failures count: the third one makes it unready.
        m.probe_result(0, fail("loading"), secs(t0, 30));
        m.probe_result(0, fail("loading"), secs(t0, 31));
        assert_eq!(m.state(), ServiceState::Starting);
        let step = m.probe_result(0, fail("loading"), secs(t0, 32));
        let t = step.transition.unwrap();
        assert_eq!(t.to, ServiceState::Unready);
        assert!(
            t.reason.contains("start period") && t.reason.contains("loading"),
            "{}",
            t.reason
        );
    }

    /// One readiness probe (thresholds 1), a 10 s grace, started at `t0`.
    fn started_with_10s_grace(t0: Instant) -> ServiceMachine {
        let mut m = ServiceMachine::new(
            &[timing(ProbeRole::Readiness, 1, 1)],
            Duration::from_secs(10),
            t0,
        );
        m.started(t0);
        m
    }

    #[test]
    fn a_longer_grace_stretches_the_current_start_window_and_a_shorter_one_waits() {
        let t0 = Instant::now();
        let mut m = started_with_10s_grace(t0);
        // The image turned out huge: 60 s from the start, not from now.
        m.set_grace(Duration::from_secs(60));
        assert_eq!(m.window_end(), Some(secs(t0, 60)));
        let step = m.probe_result(0, fail("loading"), secs(t0, 30));
        assert!(step.transition.is_none(), "inside the stretched window");
        assert_eq!(m.state(), ServiceState::Starting);
        // A shorter period does not cut the window already given...
        m.set_grace(Duration::from_secs(5));
        assert_eq!(m.window_end(), Some(secs(t0, 60)));
        // ...and applies from the next start.
        m.started(secs(t0, 100));
        assert_eq!(m.window_end(), Some(secs(t0, 105)));
        // Not starting: nothing to stretch.
        m.probe_result(0, ok(), secs(t0, 101));
        assert_eq!(m.state(), ServiceState::Ready);
        m.set_grace(Duration::from_secs(600));
        assert!(!m.in_start_window(secs(t0, 200)));
    }

    #[test]
    fn becoming_ready_ends_the_start_window() {
        let t0 = Instant::now();
        let mut m = started_with_10s_grace(t0);
        m.probe_result(0, ok(), secs(t0, 1));
        assert_eq!(m.state(), ServiceState::Ready);
        // Ready ends the window early: from now on failures count.
        m.probe_result(0, fail("x"), secs(t0, 2));
        assert_eq!(m.state(), ServiceState::Unready);
    }

    #[test]
    fn extend_deadline_keeps_the_window_open() {
        let t0 = Instant::now();
        let mut m = ServiceMachine::new(
            &[timing(ProbeRole::Readiness, 1, 1)],
            Duration::from_secs(5),
            t0,
        );
        m.started(t0);
        m.extend_deadline(secs(t0, 60));
        m.extend_deadline(secs(t0, 20)); // never shortens
        assert!(m.in_start_window(secs(t0, 59)));
        m.probe_result(0, fail("loading model 40%"), secs(t0, 30));
        assert_eq!(m.state(), ServiceState::Starting);
        m.probe_result(0, fail("loading model 40%"), secs(t0, 61));
        assert_eq!(m.state(), ServiceState::Unready);
    }

    /// Issue #15 item 3: a ready agent that says `starting` (a reload, with
    /// or without a deadline) is not ready at once, is not restarted inside
    /// its new window, and is ready again when it says so; a second probe
    /// that passes meanwhile does not make it ready.
    #[test]
    fn agent_starting_again_leaves_ready_with_a_new_window() {
        let t0 = Instant::now();
        let probes = [
            timing(ProbeRole::Readiness, 1, 1),
            timing(ProbeRole::Readiness, 1, 1),
        ];
        let mut m = ServiceMachine::new(&probes, Duration::from_secs(10), t0);
        m.started(t0);
        m.probe_result(0, ok(), secs(t0, 1));
        m.probe_result(1, ok(), secs(t0, 1));
        assert_eq!(m.state(), ServiceState::Ready);

        let starting = ProbeOutcome::starting(Duration::from_micros(50), "starting: reload");
        let step = m.probe_result(0, starting.clone(), secs(t0, 100));
        let t = step.transition.expect("ready -> starting");
        assert_eq!(
            (t.from, t.to),
            (ServiceState::Ready, ServiceState::Starting)
        );
        assert_eq!(t.cause, Some(Cause::AgentRestarting));
        assert!(t.reason.contains("starting: reload"), "{}", t.reason);
        m.extend_deadline(secs(t0, 130));
        // The other probe passing does not make it ready; the agent's
        // failures inside the window do not make it unready.
        m.probe_result(1, ok(), secs(t0, 101));
        m.probe_result(0, starting.clone(), secs(t0, 120));
        assert_eq!(m.state(), ServiceState::Starting);
        m.probe_result(0, ok(), secs(t0, 125));
        assert_eq!(m.state(), ServiceState::Ready);

        // Still `starting` past its window: unready, as any start.
        m.probe_result(0, starting.clone(), secs(t0, 200));
        assert_eq!(m.state(), ServiceState::Starting);
        m.probe_result(0, starting, secs(t0, 211));
        assert_eq!(m.state(), ServiceState::Unready);
        // An ordinary failure of a ready service keeps its threshold.
    }

    /// Past the restart budget the healer asks the runner for `failed`
    /// (the runner is the one writer of a probed service's state); probes
    /// passing again bring it back to `ready`.
    #[test]
    fn given_up_is_failed_until_the_probes_pass_again() {
        let t0 = Instant::now();
        let mut m = ServiceMachine::new(&[timing(ProbeRole::Readiness, 1, 1)], Duration::ZERO, t0);
        m.started(t0);
        m.probe_result(0, fail("refused"), secs(t0, 1));
        assert_eq!(m.state(), ServiceState::Unready);
        let step = m.gave_up(secs(t0, 2), "restart budget exhausted");
        let t = step.transition.expect("a transition");
        assert_eq!(
            (t.to, t.reason.as_str()),
            (ServiceState::Failed, "restart budget exhausted")
        );
        assert_eq!(
            m.probe_result(0, fail("refused"), secs(t0, 3)).transition,
            None
        );
        m.probe_result(0, ok(), secs(t0, 4));
        assert_eq!(m.state(), ServiceState::Ready);
    }

    /// Issue #15 item 6: a service whose container exited stays `failed`
    /// (it went failed -> ready -> unready when one more probe result came in
    /// on the old counters) until its container starts again.
    #[test]
    fn an_exited_container_stays_failed_until_it_starts_again() {
        let t0 = Instant::now();
        let mut m = ServiceMachine::new(&[timing(ProbeRole::Readiness, 1, 3)], Duration::ZERO, t0);
        m.started(t0);
        m.probe_result(0, ok(), secs(t0, 1));
        assert_eq!(m.state(), ServiceState::Ready);
        m.exited(secs(t0, 2), 3, false, "");
        assert_eq!(m.state(), ServiceState::Failed);
        for (s, outcome) in [
            (3, fail("connection refused")),
            (4, ok()),
            (5, fail("refused")),
        ] {
            let step = m.probe_result(0, outcome, secs(t0, s));
            assert_eq!(step.transition, None, "at {s}s");
            assert_eq!(m.state(), ServiceState::Failed);
        }
        m.restarted(secs(t0, 6));
        assert_eq!(m.state(), ServiceState::Starting);
        m.probe_result(0, ok(), secs(t0, 7));
        assert_eq!(m.state(), ServiceState::Ready);
    }

    #[test]
    fn startup_probe_gates_readiness_and_liveness() {
        let t0 = Instant::now();
        let probes = [
            timing(ProbeRole::Startup, 1, 2),
            timing(ProbeRole::Readiness, 1, 1),
            timing(ProbeRole::Liveness, 1, 1),
        ];
        let mut m = ServiceMachine::new(&probes, Duration::ZERO, t0);
        m.started(t0);
        // Readiness ok and liveness failing before the startup probe passed: nothing happens.
        assert!(m.probe_result(1, ok(), secs(t0, 1)).transition.is_none());
        let step = m.probe_result(2, fail("dead"), secs(t0, 1));
        assert!(step.transition.is_none() && step.decision.is_none());
        assert_eq!(m.state(), ServiceState::Starting);
        // Startup passes; readiness already passing -> ready.
        let step = m.probe_result(0, ok(), secs(t0, 2));
        assert_eq!(step.transition.unwrap().to, ServiceState::Ready);
        // Now liveness counts: one failure (threshold 1) asks for a restart.
        let step = m.probe_result(2, fail("deadlock"), secs(t0, 3));
        assert_eq!(step.transition.unwrap().to, ServiceState::Failed);
        match step.decision {
            Some(Decision::Restart { reason }) => assert!(reason.contains("deadlock"), "{reason}"),
            None => panic!("liveness failure must ask for a restart"),
        }
        // The supervisor restarts: back to starting with a fresh gate.
        let step = m.restarted(secs(t0, 4));
        assert_eq!(step.transition.unwrap().to, ServiceState::Starting);
        assert_eq!(m.restarts(), 1);
        assert!(
            m.probe_result(1, ok(), secs(t0, 5)).transition.is_none(),
            "gated again"
        );
    }

    #[test]
    fn startup_probe_gives_up_after_the_window() {
        let t0 = Instant::now();
        let mut m = ServiceMachine::new(
            &[timing(ProbeRole::Startup, 1, 2)],
            Duration::from_secs(10),
            t0,
        );
        m.started(t0);
        for s in 1..10 {
            assert!(m
                .probe_result(0, fail("refused"), secs(t0, s))
                .decision
                .is_none());
        }
        m.probe_result(0, fail("refused"), secs(t0, 10));
        let step = m.probe_result(0, fail("refused"), secs(t0, 11));
        assert_eq!(step.transition.unwrap().to, ServiceState::Failed);
        assert!(matches!(step.decision, Some(Decision::Restart { .. })));
    }

    #[test]
    fn no_probes_means_ready_when_running_and_exits_end_states() {
        let t0 = Instant::now();
        let mut m = ServiceMachine::new(&[], Duration::from_secs(10), t0);
        m.started(t0);
        assert_eq!(m.state(), ServiceState::Ready);
        m.exited(secs(t0, 1), 0, true, "");
        assert_eq!(m.state(), ServiceState::Completed);
        m.started(secs(t0, 2));
        let step = m.exited(secs(t0, 3), 137, false, " (OOM-killed at 60 MiB of 64 MiB)");
        assert_eq!(m.state(), ServiceState::Failed);
        assert_eq!(
            step.transition.map(|t| t.reason).as_deref(),
            Some("container exited with code 137 (OOM-killed at 60 MiB of 64 MiB)")
        );
        m.stopped(secs(t0, 4), "muster down");
        assert_eq!(m.state(), ServiceState::Stopped);
        // Results while stopped are kept but change nothing.
        let mut p = ServiceMachine::new(&[timing(ProbeRole::Readiness, 1, 1)], Duration::ZERO, t0);
        assert!(p.probe_result(0, ok(), t0).transition.is_none());
        assert_eq!(p.state(), ServiceState::Pending);
        assert!(p.probes()[0].last.is_some());
    }
}
