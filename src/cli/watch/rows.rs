//! What `status --watch` shows, as plain values (no terminal here): one row
//! per service and, under a service with several containers, one row per
//! replica; CPU and memory from the muster's last resource sample; the last
//! state changes; the filter's cycle. The screen (`mod.rs`) and the plain
//! tables both draw these rows, and the unit tests below check them.

use std::collections::BTreeMap;

use muster::probe::ProbeStatus;
use muster::supervisor::telemetry::{bytes, ServiceUsage};

pub(super) use super::super::status::Resources;
use muster::supervisor::{ReplicaState, ReplicaStatus, ServiceState, ServiceStatus, StackSnapshot};
use ratatui::style::Color;

use super::super::status::fmt_latency;
use super::EVENTS;

/// One service (or one replica of it) as the view shows it (pure: built
/// from a snapshot and the time).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RowView {
    /// The service, or `  └ CONTAINER` for a replica's row.
    pub(super) name: String,
    /// The service the row belongs to (its logs open on Enter).
    pub(super) service: String,
    pub(super) state: ServiceState,
    pub(super) state_text: String,
    pub(super) time_in_state: String,
    pub(super) latency: String,
    pub(super) restarts: String,
    pub(super) grace_left: String,
    /// `12%` of one core; `-` without a sample.
    pub(super) cpu: String,
    /// `61 MiB / 64 MiB` (usage / limit); `-` without a sample.
    pub(super) memory: String,
    pub(super) reason: String,
}

/// State changes the view saw itself, for a stack probed directly (no
/// muster keeps transitions then).
#[derive(Default)]
pub(super) struct Observed {
    /// Per service: its state and when the view first saw it in it.
    states: BTreeMap<String, (ServiceState, u64)>,
    pub(super) events: Vec<(u64, String)>,
}

impl Observed {
    pub(super) fn update(&mut self, snapshot: &StackSnapshot) {
        for (name, status) in &snapshot.services {
            match self.states.get(name) {
                Some((state, _)) if *state == status.state => {}
                Some((state, _)) => {
                    let text = format!("{name} {state} -> {} {}", status.state, status.reason);
                    self.events.push((snapshot.at_ms, text));
                    self.states
                        .insert(name.clone(), (status.state, snapshot.at_ms));
                }
                None => {
                    self.states
                        .insert(name.clone(), (status.state, snapshot.at_ms));
                }
            }
        }
        let excess = self.events.len().saturating_sub(EVENTS);
        self.events.drain(..excess);
    }

    fn since(&self, name: &str) -> Option<u64> {
        self.states.get(name).map(|(_, at)| *at)
    }
}

/// `12s`, `3m04s`, `2h05m`.
fn short_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub(super) fn row_view(
    status: &ServiceStatus,
    now_ms: u64,
    live: bool,
    observed: &Observed,
) -> RowView {
    let since = if live {
        Some(status.since_ms)
    } else {
        observed.since(&status.name)
    };
    let failing = status
        .probes
        .iter()
        .find(|p| p.last.as_ref().is_some_and(|o| o.status != ProbeStatus::Ok));
    let probe = failing.or_else(|| status.probes.first());
    let latency = probe
        .and_then(|p| p.last.as_ref())
        .map(|o| fmt_latency(o.latency))
        .unwrap_or_else(|| "-".into());
    let heal = &status.heal;
    let restarts = heal.muster_restarts + heal.engine_restarts + heal.external_restarts;
    let restarts = match heal.budget {
        0 => restarts.to_string(),
        budget => format!("{restarts} ({}/{budget})", heal.budget_used),
    };
    let grace_left = match (status.state, since) {
        (ServiceState::Starting, Some(since)) if status.grace_ms > 0 => {
            short_age((since + status.grace_ms).saturating_sub(now_ms))
        }
        _ => "-".into(),
    };
    let mut reason = failing
        .and_then(|p| p.last.as_ref().map(|o| o.reason.clone()))
        .unwrap_or_else(|| status.reason.clone());
    if let Some(pull) = &status.pull {
        reason = format!("pulling {}: {}", pull.image, pull.summary());
    } else if let Some(progress) = &status.progress {
        reason = format!("{reason} ({progress})");
    }
    if let Some(paused) = &heal.paused {
        reason = format!("{reason} [paused by {}]", paused.by);
    }
    let mut state_text = status.state.to_string();
    if status.degraded && status.state.is_ready() {
        state_text.push_str(" (degraded)");
    }
    if heal.paused.is_some() {
        state_text.push_str(" (paused)");
    }
    RowView {
        name: status.name.clone(),
        service: status.name.clone(),
        state: status.state,
        state_text,
        time_in_state: since
            .map(|s| short_age(now_ms.saturating_sub(s)))
            .unwrap_or_else(|| "-".into()),
        latency,
        restarts,
        grace_left,
        cpu: "-".into(),
        memory: "-".into(),
        reason,
    }
}

/// `12%` of one core.
fn cpu_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".into(), |r| format!("{:.0}%", r * 100.0))
}

/// `61 MiB / 64 MiB`, or `61 MiB` without a limit.
fn memory_text(used: u64, limit: Option<u64>) -> String {
    match limit {
        Some(limit) => format!("{} / {}", bytes(used), bytes(limit)),
        None => bytes(used),
    }
}

/// A replica's row under its service's.
fn replica_row(
    service: &ServiceStatus,
    r: &ReplicaStatus,
    now_ms: u64,
    usage: Option<&ServiceUsage>,
) -> RowView {
    let state = match r.state {
        ReplicaState::Running => ServiceState::Ready,
        ReplicaState::Exited => ServiceState::Failed,
        ReplicaState::Stopped => ServiceState::Stopped,
        ReplicaState::Created => ServiceState::Pending,
    };
    let mut state_text = format!("{:?}", r.state).to_lowercase();
    if let Some(code) = r.exit_code {
        state_text = format!("{state_text} ({code})");
    }
    let sample = usage.and_then(|u| u.replicas.iter().find(|c| c.id == r.id));
    let mut reason = r.note.clone().unwrap_or_default();
    if r.oom_kills > 0 {
        reason = format!("{} OOM kill(s); {reason}", r.oom_kills);
    }
    RowView {
        name: format!("  └ {}", r.name),
        service: service.name.clone(),
        state,
        state_text,
        time_in_state: if r.since_ms > 0 {
            short_age(now_ms.saturating_sub(r.since_ms))
        } else {
            "-".into()
        },
        latency: "-".into(),
        restarts: r.restarts.to_string(),
        grace_left: "-".into(),
        cpu: sample.map_or_else(|| "-".into(), |c| cpu_text(c.cpu_ratio)),
        memory: sample.map_or_else(
            || "-".into(),
            |c| memory_text(c.memory_bytes, c.memory_limit_bytes),
        ),
        reason,
    }
}

/// Every row: each service that passes `filter`, with its CPU and memory,
/// and under a service with more than one container a row per replica.
pub(super) fn rows(
    snapshot: &StackSnapshot,
    resources: &Resources,
    now_ms: u64,
    live: bool,
    observed: &Observed,
    filter: Option<ServiceState>,
) -> Vec<RowView> {
    let mut out = Vec::new();
    for s in snapshot.services.values() {
        if filter.is_some_and(|f| s.state != f) {
            continue;
        }
        let usage = resources.get(&s.name);
        let mut row = row_view(s, now_ms, live, observed);
        if let Some(u) = usage {
            let sampled = u.replicas.iter().any(|c| c.cpu_ratio.is_some());
            row.cpu = if sampled {
                cpu_text(Some(u.cpu_ratio))
            } else {
                "-".into()
            };
            row.memory = memory_text(u.memory_bytes, u.memory_limit_bytes);
        }
        out.push(row);
        if s.replicas.len() > 1 {
            out.extend(s.replicas.iter().map(|r| replica_row(s, r, now_ms, usage)));
        }
    }
    out
}

/// The last state changes: the muster's transitions of every service, or the
/// ones this view saw. Oldest first, `HH:MM:SS service from -> to reason`.
pub(super) fn events(snapshot: &StackSnapshot, live: bool, observed: &Observed) -> Vec<String> {
    let mut all: Vec<(u64, String)> = if live {
        snapshot
            .services
            .values()
            .flat_map(|s| {
                s.transitions.iter().map(|t| {
                    (
                        t.at_ms,
                        format!("{} {} -> {} {}", s.name, t.from, t.to, t.reason),
                    )
                })
            })
            .collect()
    } else {
        observed.events.clone()
    };
    all.sort_by_key(|(at, _)| *at);
    let skip = all.len().saturating_sub(EVENTS);
    all.into_iter()
        .skip(skip)
        .map(|(at, text)| format!("{} {text}", clock(at)))
        .collect()
}

/// `HH:MM:SS` (UTC) of unix milliseconds.
pub(super) fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// The states present, in the order the filter key cycles through them.
pub(super) fn next_filter(
    current: Option<ServiceState>,
    snapshot: &StackSnapshot,
) -> Option<ServiceState> {
    const ORDER: [ServiceState; 8] = [
        ServiceState::Ready,
        ServiceState::Starting,
        ServiceState::Unready,
        ServiceState::Failed,
        ServiceState::Pending,
        ServiceState::Blocked,
        ServiceState::Stopped,
        ServiceState::Completed,
    ];
    let present: Vec<ServiceState> = ORDER
        .into_iter()
        .filter(|s| snapshot.count_in(*s) > 0)
        .collect();
    match current {
        None => present.first().copied(),
        Some(state) => {
            let at = present.iter().position(|s| *s == state);
            at.and_then(|i| present.get(i + 1).copied())
        }
    }
}

pub(super) fn state_colour(state: ServiceState) -> Color {
    match state {
        ServiceState::Ready | ServiceState::Completed => Color::Green,
        ServiceState::Starting | ServiceState::Pending => Color::Yellow,
        ServiceState::Unready | ServiceState::Failed | ServiceState::Blocked => Color::Red,
        ServiceState::Stopped => Color::DarkGray,
    }
}

pub(super) const HEADERS: [&str; 9] = [
    "SERVICE",
    "STATE",
    "FOR",
    "LATENCY",
    "RESTARTS",
    "GRACE LEFT",
    "CPU",
    "MEMORY",
    "REASON",
];

pub(super) fn cells(r: &RowView) -> [String; 9] {
    [
        r.name.clone(),
        r.state_text.clone(),
        r.time_in_state.clone(),
        r.latency.clone(),
        r.restarts.clone(),
        r.grace_left.clone(),
        r.cpu.clone(),
        r.memory.clone(),
        r.reason.clone(),
    ]
}

/// The plain table: columns padded to their widest cell.
pub(super) fn table_text(
    snapshot: &StackSnapshot,
    resources: &Resources,
    live: bool,
    observed: &Observed,
) -> String {
    let mut table = vec![HEADERS.map(String::from)];
    table.extend(
        rows(snapshot, resources, snapshot.at_ms, live, observed, None)
            .iter()
            .map(cells),
    );
    super::super::status::columns(&table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, state: ServiceState, since_ms: u64) -> ServiceStatus {
        ServiceStatus {
            state,
            since_ms,
            reason: "why".into(),
            grace_ms: 30_000,
            progress: Some("loading model 40%".into()),
            ..ServiceStatus::pending(name)
        }
    }

    #[test]
    fn a_starting_service_shows_time_in_state_and_grace_left() {
        let s = status("api", ServiceState::Starting, 1_000_000);
        let row = row_view(&s, 1_012_000, true, &Observed::default());
        assert_eq!(row.time_in_state, "12s");
        assert_eq!(row.grace_left, "18s");
        assert_eq!(row.reason, "why (loading model 40%)");
        let ready = status("api", ServiceState::Ready, 1_000_000);
        assert_eq!(
            row_view(&ready, 1_200_000, true, &Observed::default()).grace_left,
            "-"
        );
    }

    #[test]
    fn probed_stacks_get_their_changes_from_what_the_view_saw() {
        let mut snap = StackSnapshot {
            project: "p".into(),
            at_ms: 5_000,
            ..Default::default()
        };
        snap.services
            .insert("db".into(), status("db", ServiceState::Starting, 0));
        let mut observed = Observed::default();
        observed.update(&snap);
        snap.at_ms = 9_000;
        snap.services
            .insert("db".into(), status("db", ServiceState::Ready, 0));
        observed.update(&snap);
        assert_eq!(
            events(&snap, false, &observed),
            ["00:00:09 db starting -> ready why"]
        );
        let row = row_view(&snap.services["db"], 10_000, false, &observed);
        assert_eq!(row.time_in_state, "1s");
        // The filter cycles through the states present, then back to all.
        assert_eq!(next_filter(None, &snap), Some(ServiceState::Ready));
        assert_eq!(next_filter(Some(ServiceState::Ready), &snap), None);
    }

    #[test]
    fn replicas_get_a_row_each_with_their_cpu_and_memory() {
        use muster::engine::stats::StatsSource;
        use muster::supervisor::telemetry::ContainerUsage;
        let mut web = status("web", ServiceState::Ready, 0);
        web.replicas = [
            (1, ReplicaState::Running, None),
            (2, ReplicaState::Exited, Some(137)),
        ]
        .into_iter()
        .map(|(n, state, exit_code)| ReplicaStatus {
            name: format!("p-web-{n}"),
            id: format!("id{n}"),
            number: n,
            state,
            since_ms: 1_000,
            image: None,
            exit_code,
            note: None,
            restarts: n - 1,
            oom_kills: n - 1,
        })
        .collect();
        let mut snap = StackSnapshot::default();
        snap.services.insert("web".into(), web);
        let sample = ContainerUsage {
            name: "p-web-1".into(),
            id: "id1".into(),
            cpu_ratio: Some(0.25),
            memory_bytes: 61 << 20,
            memory_peak_bytes: None,
            memory_limit_bytes: Some(64 << 20),
            source: StatsSource::CgroupV1,
        };
        let usage = ServiceUsage {
            cpu_ratio: 0.25,
            memory_bytes: 61 << 20,
            memory_limit_bytes: None,
            replicas: vec![sample],
        };
        let resources: Resources = [("web".to_string(), usage)].into_iter().collect();
        let all = rows(&snap, &resources, 3_000, true, &Observed::default(), None);
        let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["web", "  └ p-web-1", "  └ p-web-2"]);
        assert!(all.iter().all(|r| r.service == "web"));
        assert_eq!(
            (all[0].cpu.as_str(), all[0].memory.as_str()),
            ("25%", "61 MiB")
        );
        assert_eq!(
            (all[1].cpu.as_str(), all[1].memory.as_str()),
            ("25%", "61 MiB / 64 MiB")
        );
        assert_eq!(all[1].time_in_state, "2s");
        assert_eq!(all[2].state_text, "exited (137)");
        assert_eq!(all[2].state, ServiceState::Failed);
        assert_eq!(all[2].restarts, "1");
        assert!(
            all[2].reason.starts_with("1 OOM kill(s)"),
            "{}",
            all[2].reason
        );
        assert_eq!((all[2].cpu.as_str(), all[2].memory.as_str()), ("-", "-"));
    }
}
