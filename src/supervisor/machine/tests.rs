//! The state machine's unit tests, kept beside it so that machine.rs holds only the
//! pure machine (and stays under the 800-line limit): thresholds, start windows and
//! roles driven by scripted probe outcomes.

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
