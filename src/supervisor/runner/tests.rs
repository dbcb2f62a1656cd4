//! The runner against scripted probes on paused time: periods, batching of
//! checks due together, re-tuned grace, timeouts and the states they drive.

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
    let writer = Writer::new("t");
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
    let runner = ProbeRunner::spawn(writer, services, RunnerOptions::default());
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
    let writer = Writer::new("t");
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
    let runner = ProbeRunner::spawn(writer, services, RunnerOptions::default());
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
    let writer = Writer::new("t");
    let store = writer.store();
    let ok = Arc::new(Mutex::new(Some(false)));
    let runner = ProbeRunner::spawn(
        writer,
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
    let writer = Writer::new("t");
    let store = writer.store();
    let ok = Arc::new(Mutex::new(Some(false)));
    let runner = ProbeRunner::spawn(
        writer,
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

#[test]
fn the_start_interval_grows_with_the_time_spent_starting_up_to_the_period() {
    let period = Duration::from_secs(1);
    assert_eq!(start_interval(Duration::ZERO, period), START_INTERVAL_MIN);
    assert_eq!(
        start_interval(Duration::from_millis(500), period),
        START_INTERVAL_MIN
    );
    assert_eq!(
        start_interval(Duration::from_secs(5), period),
        Duration::from_millis(20)
    );
    assert_eq!(start_interval(Duration::from_secs(3600), period), period);
    // Never slower than the probe's own period, even a short one.
    assert_eq!(
        start_interval(Duration::ZERO, Duration::from_millis(3)),
        Duration::from_millis(3)
    );
}

#[tokio::test(start_paused = true)]
async fn a_starting_service_is_probed_at_once_and_often_then_on_its_period_once_ready() {
    let writer = Writer::new("t");
    let store = writer.store();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let ok = Arc::new(Mutex::new(Some(false)));
    struct Watched {
        runs: Arc<Mutex<Vec<tokio::time::Instant>>>,
        ok: Arc<Mutex<Option<bool>>>,
        kind: &'static str,
    }
    impl Probe for Watched {
        fn kind(&self) -> &'static str {
            self.kind
        }
        fn target(&self) -> String {
            "watched".into()
        }
        fn check(&mut self) -> ProbeFuture<'_> {
            self.runs.lock().unwrap().push(tokio::time::Instant::now());
            let ok = *self.ok.lock().unwrap() == Some(true);
            Box::pin(async move {
                if ok {
                    ProbeOutcome::ok(Duration::from_micros(50), "up")
                } else {
                    ProbeOutcome::fail(Duration::from_micros(50), "refused")
                }
            })
        }
    }
    let exec_runs = Arc::new(Mutex::new(Vec::new()));
    let services = vec![
        ServiceProbes {
            service: "svc".into(),
            required: true,
            grace: Duration::from_secs(60),
            probes: vec![RunnerProbe {
                timing: timing(3),
                probe: Box::new(Watched {
                    runs: runs.clone(),
                    ok: ok.clone(),
                    kind: "http",
                }),
            }],
        },
        ServiceProbes {
            service: "cmd".into(),
            required: true,
            grace: Duration::from_secs(60),
            probes: vec![RunnerProbe {
                timing: timing(3),
                probe: Box::new(Watched {
                    runs: exec_runs.clone(),
                    ok: Arc::new(Mutex::new(Some(false))),
                    kind: "exec",
                }),
            }],
        },
    ];
    let runner = ProbeRunner::spawn(writer, services, RunnerOptions::default());
    // Let the first (spread) runs of the pending services happen.
    settle(2).await;
    let started = tokio::time::Instant::now();
    runs.lock().unwrap().clear();
    exec_runs.lock().unwrap().clear();
    for service in ["svc", "cmd"] {
        runner.send(Control::Started {
            service: service.into(),
        });
    }
    for _ in 0..1000 {
        tokio::time::advance(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
    }
    {
        let runs = runs.lock().unwrap();
        // The first run at once, then every 5 ms: ~200 in the first second
        // instead of one.
        assert!(runs[0] - started <= Duration::from_millis(2), "{runs:?}");
        assert!(runs.len() >= 150, "{} runs in 1 s", runs.len());
        let gaps: Vec<_> = runs.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| *g <= Duration::from_millis(7)),
            "{gaps:?}"
        );
    }
    // An exec probe keeps its period while starting.
    assert!(exec_runs.lock().unwrap().len() <= 2, "{exec_runs:?}");
    // Ready: back on the period.
    *ok.lock().unwrap() = Some(true);
    settle(1).await;
    assert_eq!(store.snapshot().services["svc"].state, ServiceState::Ready);
    runs.lock().unwrap().clear();
    settle(5).await;
    let n = runs.lock().unwrap().len();
    assert!((4..=6).contains(&n), "{n} runs in 5 s at a 1 s period");
    runner.stop();
}

#[tokio::test(start_paused = true)]
async fn a_re_decided_grace_stretches_a_start_window_that_is_open() {
    let writer = Writer::new("t");
    let store = writer.store();
    let ok = Arc::new(Mutex::new(Some(false)));
    let runner = ProbeRunner::spawn(
        writer,
        scripted_service(&ok, Duration::from_secs(2)),
        RunnerOptions::default(),
    );
    runner.send(Control::Started {
        service: "svc".into(),
    });
    settle(1).await;
    // The pull finished: the image is huge, the period is now 20 s.
    runner.send(Control::SetGrace {
        service: "svc".into(),
        grace: Duration::from_secs(20),
    });
    settle(10).await;
    let snap = store.snapshot();
    assert_eq!(
        snap.services["svc"].state,
        ServiceState::Starting,
        "{snap:?}"
    );
    assert_eq!(snap.services["svc"].grace_ms, 20_000);
    // Past the stretched window, failures count again.
    settle(12).await;
    assert_eq!(
        store.snapshot().services["svc"].state,
        ServiceState::Unready
    );
    runner.stop();
}
