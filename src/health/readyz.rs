//! Liveness and readiness checks in the Kubernetes style: a list of named
//! checks, `[+]name ok` / `[-]name failed: reason` lines, `?exclude=`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::supervisor::StackSnapshot;

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub name: String,
    pub ok: bool,
    /// Why it failed, or a note on an ok check (empty for a plain ok).
    pub detail: String,
    /// Left out by `?exclude=`: listed, but does not count.
    pub excluded: bool,
}

/// The outcome of `/readyz` or `/livez`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub checks: Vec<CheckReport>,
    /// `?exclude=` names that matched no check.
    pub unmatched_excludes: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok || c.excluded)
    }

    /// The body Kubernetes would send: `ok` when passed and not verbose,
    /// else one line per check and a final `{kind} check passed|failed`.
    pub fn render(&self, kind: &str, verbose: bool) -> String {
        let passed = self.passed();
        if passed && !verbose {
            return "ok".to_string();
        }
        let mut out = String::new();
        for check in &self.checks {
            if check.excluded {
                out.push_str(&format!("[+]{} excluded: ok\n", check.name));
            } else if check.ok {
                if check.detail.is_empty() {
                    out.push_str(&format!("[+]{} ok\n", check.name));
                } else {
                    out.push_str(&format!("[+]{} ok ({})\n", check.name, check.detail));
                }
            } else {
                out.push_str(&format!("[-]{} failed: {}\n", check.name, check.detail));
            }
        }
        if !self.unmatched_excludes.is_empty() {
            let names: Vec<String> = self
                .unmatched_excludes
                .iter()
                .map(|n| format!("{n:?}"))
                .collect();
            out.push_str(&format!(
                "warn: some health checks cannot be excluded: no matches for {}\n",
                names.join(", ")
            ));
        }
        out.push_str(&format!(
            "{kind} check {}\n",
            if passed { "passed" } else { "failed" }
        ));
        out
    }
}

fn apply_excludes(mut checks: Vec<CheckReport>, excludes: &[String]) -> Report {
    let mut unmatched = Vec::new();
    for name in excludes {
        let mut matched = false;
        for check in checks.iter_mut().filter(|c| &c.name == name) {
            check.excluded = true;
            matched = true;
        }
        if !matched && !unmatched.contains(name) {
            unmatched.push(name.clone());
        }
    }
    Report {
        checks,
        unmatched_excludes: unmatched,
    }
}

/// Readiness of the stack: one check per service (in start order: level,
/// then name). A required service that is not ready fails its check; a
/// service that is not required is listed but never fails. An empty stack
/// (nothing loaded yet) and a server that is shutting down are not ready.
pub fn readiness_report(
    snapshot: &StackSnapshot,
    excludes: &[String],
    shutting_down: bool,
) -> Report {
    let mut checks = Vec::with_capacity(snapshot.services.len() + 1);
    if shutting_down {
        checks.push(CheckReport {
            name: "shutdown".into(),
            ok: false,
            detail: "muster is shutting down".into(),
            excluded: false,
        });
    }
    if snapshot.services.is_empty() {
        checks.push(CheckReport {
            name: "services".into(),
            ok: false,
            detail: "no services loaded yet".into(),
            excluded: false,
        });
    }
    let mut services: Vec<_> = snapshot.services.values().collect();
    services.sort_by(|a, b| a.level.cmp(&b.level).then_with(|| a.name.cmp(&b.name)));
    for svc in services {
        let ready = svc.state.is_ready();
        let why = if svc.reason.is_empty() {
            svc.state.to_string()
        } else {
            format!("{}: {}", svc.state, svc.reason)
        };
        let (ok, mut detail) = match (ready, svc.required) {
            (true, _) => (true, String::new()),
            (false, true) => (false, why),
            (false, false) => (true, format!("not required; {why}")),
        };
        let mut notes = Vec::new();
        if !svc.tasks.is_empty() {
            notes.push(task_note(&svc.tasks));
        }
        if svc.degraded && !svc.degraded_by.is_empty() {
            notes.push(format!("degraded: {}", svc.degraded_by.join(", ")));
        }
        if let Some(p) = &svc.heal.paused {
            notes.push(format!("paused by {}: no healing, no alerts", p.by));
        }
        for note in notes {
            detail = if detail.is_empty() {
                note
            } else {
                format!("{detail}; {note}")
            };
        }
        checks.push(CheckReport {
            name: svc.name.clone(),
            ok,
            detail,
            excluded: false,
        });
    }
    apply_excludes(checks, excludes)
}

/// A Swarm service's tasks in one line: `tasks: 2 ready (task ID on NODE,
/// …); not ready: task ID on NODE (node down): STATE`.
fn task_note(tasks: &[crate::supervisor::TaskStatus]) -> String {
    let one = |t: &crate::supervisor::TaskStatus| {
        let id: String = t.task_id.chars().take(12).collect();
        let node = match t.node_state.as_str() {
            "ready" => t.node.clone(),
            other => format!("{} (node {other})", t.node),
        };
        format!("task {id} on {node}")
    };
    let wanted: Vec<_> = tasks.iter().filter(|t| t.desired == "running").collect();
    let ready: Vec<String> = wanted.iter().filter(|t| t.ready).map(|t| one(t)).collect();
    let not: Vec<String> = wanted
        .iter()
        .filter(|t| !t.ready)
        .map(|t| format!("{}: {}", one(t), t.state))
        .collect();
    let mut text = format!("tasks: {} ready ({})", ready.len(), ready.join(", "));
    if !not.is_empty() {
        text.push_str(&format!("; not ready: {}", not.join(", ")));
    }
    text
}

/// Tracks the supervisor's heartbeat ([`crate::supervisor::StateStore::beat`]).
#[derive(Debug)]
pub struct Liveness {
    started: Instant,
    /// Milliseconds after `started` of the last beat seen.
    last_beat_ms: AtomicU64,
    seen: AtomicBool,
    window: Option<Duration>,
}

impl Liveness {
    pub fn new(window: Option<Duration>) -> Liveness {
        Liveness {
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            seen: AtomicBool::new(false),
            window,
        }
    }

    /// Records a beat now.
    pub fn record_beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_beat_ms.store(ms, Ordering::Relaxed);
        self.seen.store(true, Ordering::Release);
    }

    /// Follows the store's heartbeat counter until the store is dropped.
    pub async fn follow(&self, mut beats: watch::Receiver<u64>) {
        while beats.changed().await.is_ok() {
            self.record_beat();
        }
    }

    /// The `heartbeat` check.
    pub fn check(&self) -> CheckReport {
        let mut report = CheckReport {
            name: "heartbeat".into(),
            ok: true,
            detail: String::new(),
            excluded: false,
        };
        let Some(window) = self.window else {
            return report;
        };
        let now_ms = self.started.elapsed().as_millis() as u64;
        let window_text = crate::duration::format(window);
        if !self.seen.load(Ordering::Acquire) {
            let age = Duration::from_millis(now_ms);
            if age > window {
                report.ok = false;
                report.detail = format!(
                    "no supervisor heartbeat since the server started {} ago (window {window_text})",
                    format_secs(age)
                );
            } else {
                report.detail = "waiting for the first supervisor heartbeat".into();
            }
            return report;
        }
        let last = self.last_beat_ms.load(Ordering::Relaxed);
        let age = Duration::from_millis(now_ms.saturating_sub(last));
        if age > window {
            report.ok = false;
            report.detail = format!(
                "supervisor heartbeat stalled: last beat {} ago (window {window_text})",
                format_secs(age)
            );
        }
        report
    }
}

fn format_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Liveness of muster itself: one `heartbeat` check.
pub fn liveness_report(liveness: &Liveness, excludes: &[String]) -> Report {
    apply_excludes(vec![liveness.check()], excludes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{ServiceState, ServiceStatus, Writer};

    fn stack() -> Writer {
        let store = Writer::new("p");
        let mut redis = ServiceStatus::pending("redis");
        redis.level = 0;
        store.insert(redis);
        let mut agent = ServiceStatus::pending("memory-agent");
        agent.level = 1;
        store.insert(agent);
        let mut extra = ServiceStatus::pending("batch");
        extra.level = 1;
        extra.required = false;
        store.insert(extra);
        store
    }

    #[test]
    fn verbose_lines_in_start_order() {
        let store = stack();
        store.transition("redis", ServiceState::Ready, "PONG");
        store.transition("memory-agent", ServiceState::Failed, "exited 137");
        let report = readiness_report(&store.snapshot(), &[], false);
        assert!(!report.passed());
        assert_eq!(
            report.render("readyz", true),
            "[+]redis ok\n[+]batch ok (not required; pending)\n[-]memory-agent failed: failed: exited 137\nreadyz check failed\n"
        );
        // A failing report is always verbose, as in Kubernetes.
        assert!(report
            .render("readyz", false)
            .ends_with("readyz check failed\n"));
    }

    #[test]
    fn degraded_services_name_their_dependency() {
        let store = stack();
        store.transition("redis", ServiceState::Unready, "refused");
        store.transition("memory-agent", ServiceState::Ready, "signal");
        store.update("memory-agent", |s| {
            s.degraded = true;
            s.degraded_by = vec!["redis (unready)".into()];
        });
        let text = readiness_report(&store.snapshot(), &[], false).render("readyz", true);
        assert!(
            text.contains("[+]memory-agent ok (degraded: redis (unready))\n"),
            "{text}"
        );
        assert!(
            text.contains("[-]redis failed: unready: refused\n"),
            "{text}"
        );
    }

    #[test]
    fn exclude_leaves_checks_out() {
        let store = stack();
        store.transition("redis", ServiceState::Ready, "PONG");
        let excludes = vec!["memory-agent".to_string(), "nope".to_string()];
        let report = readiness_report(&store.snapshot(), &excludes, false);
        assert!(report.passed());
        assert_eq!(report.render("readyz", false), "ok");
        let text = report.render("readyz", true);
        assert!(text.contains("[+]memory-agent excluded: ok\n"), "{text}");
        assert!(text.contains("no matches for \"nope\""), "{text}");
        assert!(text.ends_with("readyz check passed\n"), "{text}");
    }

    #[test]
    fn empty_stack_and_shutdown_are_not_ready() {
        let store = Writer::new("p");
        let report = readiness_report(&store.snapshot(), &[], false);
        assert!(!report.passed());
        assert!(report
            .render("readyz", true)
            .contains("[-]services failed: no services loaded yet"));
        let store = stack();
        for s in ["redis", "memory-agent"] {
            store.transition(s, ServiceState::Ready, "");
        }
        assert!(readiness_report(&store.snapshot(), &[], false).passed());
        assert!(!readiness_report(&store.snapshot(), &[], true).passed());
    }

    #[test]
    fn liveness_window() {
        let live = Liveness::new(Some(Duration::from_millis(50)));
        assert!(live.check().ok, "start-up allowance");
        std::thread::sleep(Duration::from_millis(80));
        let check = live.check();
        assert!(!check.ok);
        assert!(
            check.detail.contains("no supervisor heartbeat"),
            "{check:?}"
        );
        live.record_beat();
        assert!(live.check().ok);
        std::thread::sleep(Duration::from_millis(80));
        let check = live.check();
        assert!(!check.ok && check.detail.contains("stalled"), "{check:?}");
        assert!(Liveness::new(None).check().ok);
    }
}
