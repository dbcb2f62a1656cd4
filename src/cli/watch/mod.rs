//! `muster status --watch`: a live, full-screen view of the stack.
//!
//! Why: the operators' runbook was `watch docker ps` next to `docker-compose
//! logs SERVICE`; neither shows what muster knows (why a service is not
//! ready, its probe latency, restarts, the grace left, a pull's progress).
//! This view polls the same source as `muster status` (this project's running
//! muster, checked by its identity; else one direct probe run) every
//! `--interval`, on a thread of its own so keys stay responsive, and shows the
//! last state changes: the muster's own transitions when one answers, else
//! the changes this view saw between polls.
//!
//! On a terminal it draws with ratatui (see the README's dependency notes):
//! `q` / Ctrl-C quit and restore the terminal (also on a panic, through
//! ratatui's hook), `f` cycles a filter over the states present, arrows pick
//! a service, Enter / `l` show its recent logs through the Engine API. Over a
//! pipe (or with `--json`) it prints one table (or one snapshot line) per
//! interval instead. A terminal smaller than [`MIN_WIDTH`] x [`MIN_HEIGHT`]
//! gets a message saying so, not a broken layout.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use muster::config::Settings;
use muster::probe::ProbeStatus;
use muster::supervisor::{ServiceState, ServiceStatus, StackSnapshot};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::status::{fmt_latency, Source};
use super::{CliResult, Global, StatusArgs};

/// The smallest terminal the view fits in.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 12;
/// State changes kept and shown.
const EVENTS: usize = 8;
/// Log lines per container in the log pane.
const LOG_LINES: u64 = 200;

/// What the poller thread sends to the screen.
enum Feed {
    Snapshot(Box<StackSnapshot>, String, Option<String>),
    Failed(String),
    Logs(String, LogLines),
}

/// One service as the view shows it (pure: built from a snapshot and the time).
#[derive(Debug, Clone, PartialEq)]
struct RowView {
    name: String,
    state: ServiceState,
    state_text: String,
    time_in_state: String,
    latency: String,
    restarts: String,
    grace_left: String,
    reason: String,
}

/// State changes the view saw itself, for a stack probed directly (no
/// muster keeps transitions then).
#[derive(Default)]
struct Observed {
    /// Per service: its state and when the view first saw it in it.
    states: BTreeMap<String, (ServiceState, u64)>,
    events: Vec<(u64, String)>,
}

impl Observed {
    fn update(&mut self, snapshot: &StackSnapshot) {
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

fn row_view(status: &ServiceStatus, now_ms: u64, live: bool, observed: &Observed) -> RowView {
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
        state: status.state,
        state_text,
        time_in_state: since
            .map(|s| short_age(now_ms.saturating_sub(s)))
            .unwrap_or_else(|| "-".into()),
        latency,
        restarts,
        grace_left,
        reason,
    }
}

/// The last state changes: the muster's transitions of every service, or the
/// ones this view saw. Oldest first, `HH:MM:SS service from -> to reason`.
fn events(snapshot: &StackSnapshot, live: bool, observed: &Observed) -> Vec<String> {
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
fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// The states present, in the order the filter key cycles through them.
fn next_filter(current: Option<ServiceState>, snapshot: &StackSnapshot) -> Option<ServiceState> {
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

fn state_colour(state: ServiceState) -> Color {
    match state {
        ServiceState::Ready | ServiceState::Completed => Color::Green,
        ServiceState::Starting | ServiceState::Pending => Color::Yellow,
        ServiceState::Unready | ServiceState::Failed | ServiceState::Blocked => Color::Red,
        ServiceState::Stopped => Color::DarkGray,
    }
}

/// Polls the stack every `interval` until `stop`; answers log requests.
fn poll(
    global: Global,
    settings: Settings,
    direct: bool,
    interval: Duration,
    feed: mpsc::Sender<Feed>,
    logs: mpsc::Receiver<(String, String)>,
    stop: &AtomicBool,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = feed.send(Feed::Failed(format!("cannot start the runtime: {e}")));
            return;
        }
    };
    let mut due = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= due {
            due = Instant::now() + interval;
            let item = match super::status::snapshot(&global, &settings, direct, &runtime) {
                Ok((snapshot, source, note)) => {
                    let from = match source {
                        Source::Live(addr) => format!("live from the muster at {addr}"),
                        Source::Probed(mode) => format!("probed directly ({})", mode.as_str()),
                    };
                    Feed::Snapshot(Box::new(snapshot), from, note)
                }
                Err(e) => Feed::Failed(muster::error_text::error_chain(&*e)),
            };
            if feed.send(item).is_err() {
                return;
            }
        }
        if let Ok((project, service)) = logs.recv_timeout(Duration::from_millis(50)) {
            let lines = runtime.block_on(async {
                let engine = muster::engine::Engine::connect()
                    .await
                    .map_err(|e| muster::error_text::error_chain(&e))?;
                super::logs::recent(&engine, &project, &service, LOG_LINES)
                    .await
                    .map_err(|e| muster::error_text::error_chain(&*e))
            });
            if feed.send(Feed::Logs(service, lines)).is_err() {
                return;
            }
        }
    }
}

pub fn run(global: &Global, settings: &Settings, args: &StatusArgs) -> CliResult {
    let interval = muster::duration::parse(&args.interval)?;
    let interval = interval.max(Duration::from_millis(100));
    let tui = !global.json && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let stop = AtomicBool::new(false);
    let (feed_tx, feed_rx) = mpsc::channel();
    let (logs_tx, logs_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let (g, s, stop_ref) = (global.clone(), settings.clone(), &stop);
        let direct = args.direct;
        scope.spawn(move || poll(g, s, direct, interval, feed_tx, logs_rx, stop_ref));
        let result = if tui {
            screen(feed_rx, logs_tx)
        } else {
            plain(global.json, feed_rx)
        };
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// Over a pipe: one table (or one JSON snapshot line) per poll, until the
/// reader goes away or Ctrl-C.
fn plain(json: bool, feed: mpsc::Receiver<Feed>) -> CliResult {
    let mut observed = Observed::default();
    let mut out = std::io::stdout();
    for item in feed {
        let text = match item {
            Feed::Snapshot(snapshot, from, note) => {
                if let Some(note) = note {
                    eprintln!("muster status: {note}");
                }
                observed.update(&snapshot);
                if json {
                    format!("{}\n", serde_json::to_string(&*snapshot)?)
                } else {
                    let live = from.starts_with("live");
                    let mut text = format!(
                        "--- {} {} ({from})\n",
                        clock(snapshot.at_ms),
                        snapshot.project
                    );
                    text.push_str(&table_text(&snapshot, live, &observed));
                    for event in events(&snapshot, live, &observed) {
                        text.push_str(&format!("  {event}\n"));
                    }
                    text
                }
            }
            Feed::Failed(why) => {
                eprintln!("muster status: {why}");
                continue;
            }
            Feed::Logs(..) => continue,
        };
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(ExitCode::SUCCESS);
        }
    }
    Ok(ExitCode::SUCCESS)
}

const HEADERS: [&str; 7] = [
    "SERVICE",
    "STATE",
    "FOR",
    "LATENCY",
    "RESTARTS",
    "GRACE LEFT",
    "REASON",
];

fn cells(r: &RowView) -> [String; 7] {
    [
        r.name.clone(),
        r.state_text.clone(),
        r.time_in_state.clone(),
        r.latency.clone(),
        r.restarts.clone(),
        r.grace_left.clone(),
        r.reason.clone(),
    ]
}

/// The plain table: columns padded to their widest cell.
fn table_text(snapshot: &StackSnapshot, live: bool, observed: &Observed) -> String {
    let mut rows = vec![HEADERS.map(String::from)];
    rows.extend(
        snapshot
            .services
            .values()
            .map(|s| cells(&row_view(s, snapshot.at_ms, live, observed))),
    );
    super::status::columns(&rows)
}

/// A service's recent log lines, or why they could not be read.
type LogLines = Result<Vec<String>, String>;

/// What the screen shows now.
struct Screen {
    snapshot: Option<StackSnapshot>,
    from: String,
    note: Option<String>,
    error: Option<String>,
    observed: Observed,
    filter: Option<ServiceState>,
    table: TableState,
    /// The log pane: service, and its lines once read.
    logs: Option<(String, Option<LogLines>)>,
}

impl Screen {
    fn live(&self) -> bool {
        self.from.starts_with("live")
    }

    fn rows(&self) -> Vec<RowView> {
        let Some(snapshot) = &self.snapshot else {
            return Vec::new();
        };
        let now = muster::clock::now_ms();
        snapshot
            .services
            .values()
            .filter(|s| self.filter.is_none_or(|f| s.state == f))
            .map(|s| row_view(s, now, self.live(), &self.observed))
            .collect()
    }
}

/// The full-screen view, until q / Ctrl-C.
fn screen(feed: mpsc::Receiver<Feed>, logs: mpsc::Sender<(String, String)>) -> CliResult {
    let mut terminal = ratatui::try_init()?;
    let result = screen_loop(&mut terminal, feed, logs);
    ratatui::try_restore()?;
    result
}

fn screen_loop(
    terminal: &mut ratatui::DefaultTerminal,
    feed: mpsc::Receiver<Feed>,
    logs: mpsc::Sender<(String, String)>,
) -> CliResult {
    let mut screen = Screen {
        snapshot: None,
        from: String::new(),
        note: None,
        error: None,
        observed: Observed::default(),
        filter: None,
        table: TableState::default().with_selected(Some(0)),
        logs: None,
    };
    loop {
        while let Ok(item) = feed.try_recv() {
            match item {
                Feed::Snapshot(snapshot, from, note) => {
                    screen.observed.update(&snapshot);
                    // An open log pane follows: read its lines again.
                    if let Some((service, _)) = &screen.logs {
                        let _ = logs.send((snapshot.project.clone(), service.clone()));
                    }
                    screen.snapshot = Some(*snapshot);
                    screen.from = from;
                    screen.note = note;
                    screen.error = None;
                }
                Feed::Failed(why) => screen.error = Some(why),
                Feed::Logs(service, lines) => {
                    if screen.logs.as_ref().is_some_and(|(s, _)| *s == service) {
                        screen.logs = Some((service, Some(lines)));
                    }
                }
            }
        }
        terminal.draw(|frame| draw(frame, &mut screen))?;
        if !event::poll(Duration::from_millis(250))? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let count = screen.rows().len();
        match key.code {
            KeyCode::Char('q') => return Ok(ExitCode::SUCCESS),
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return Ok(ExitCode::SUCCESS)
            }
            KeyCode::Esc | KeyCode::Enter | KeyCode::Char('l') if screen.logs.is_some() => {
                screen.logs = None
            }
            KeyCode::Enter | KeyCode::Char('l') => {
                let rows = screen.rows();
                let chosen = screen.table.selected().and_then(|i| rows.get(i));
                if let (Some(row), Some(snapshot)) = (chosen, &screen.snapshot) {
                    screen.logs = Some((row.name.clone(), None));
                    let _ = logs.send((snapshot.project.clone(), row.name.clone()));
                }
            }
            KeyCode::Char('f') => {
                if let Some(snapshot) = &screen.snapshot {
                    screen.filter = next_filter(screen.filter, snapshot);
                    screen.table.select(Some(0));
                }
            }
            KeyCode::Down | KeyCode::Char('j') if count > 0 => {
                let i = screen.table.selected().unwrap_or(0);
                screen.table.select(Some((i + 1).min(count - 1)));
            }
            KeyCode::Up | KeyCode::Char('k') => {
                let i = screen.table.selected().unwrap_or(0);
                screen.table.select(Some(i.saturating_sub(1)));
            }
            _ => {}
        }
    }
}

fn draw(frame: &mut ratatui::Frame, screen: &mut Screen) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small: {}x{}, muster status --watch needs at least {MIN_WIDTH}x{MIN_HEIGHT}; enlarge it, or press q",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [head, body, events_area, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(EVENTS as u16 + 2),
        Constraint::Length(1),
    ])
    .areas(area);
    let filter = screen.filter.map(|f| f.as_str()).unwrap_or("all");
    let header = match &screen.snapshot {
        Some(s) => {
            let required = s.services.values().filter(|x| x.required).count();
            let ready = s
                .services
                .values()
                .filter(|x| x.required && x.state.is_ready())
                .count();
            format!(
                "muster · {} · {ready}/{required} required ready · {} · {} · filter: {filter}",
                s.project,
                screen.from,
                clock(s.at_ms)
            )
        }
        None => "muster · reading the stack…".to_string(),
    };
    frame.render_widget(
        Paragraph::new(header).style(Style::default().add_modifier(Modifier::BOLD)),
        head,
    );
    match &screen.logs {
        Some((service, lines)) => draw_logs(frame, body, service, lines.as_ref()),
        None => draw_table(frame, body, screen),
    }
    let mut lines: Vec<Line> = Vec::new();
    if let Some(error) = &screen.error {
        lines.push(Line::styled(
            format!("error: {error}"),
            Style::default().fg(Color::Red),
        ));
    }
    if let Some(note) = &screen.note {
        lines.push(Line::styled(
            note.clone(),
            Style::default().fg(Color::Yellow),
        ));
    }
    if let Some(snapshot) = &screen.snapshot {
        lines.extend(
            events(snapshot, screen.live(), &screen.observed)
                .into_iter()
                .map(Line::from),
        );
    }
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::TOP)
                .title(" last state changes "),
        ),
        events_area,
    );
    let help = match screen.logs {
        Some(_) => "Esc/Enter/l back · q quit",
        None => "q quit · f filter by state · ↑/↓ select · Enter/l logs",
    };
    frame.render_widget(
        Paragraph::new(help).style(Style::default().fg(Color::DarkGray)),
        keys,
    );
}

fn draw_table(frame: &mut ratatui::Frame, area: Rect, screen: &mut Screen) {
    let rows = screen.rows();
    let table_rows = rows.iter().map(|r| {
        let colour = state_colour(r.state);
        let c = cells(r);
        Row::new(c.into_iter().enumerate().map(|(i, text)| {
            let cell = Cell::from(text);
            if i == 1 {
                cell.style(Style::default().fg(colour))
            } else {
                cell
            }
        }))
    });
    let widths = [
        Constraint::Length(
            rows.iter()
                .map(|r| r.name.len())
                .max()
                .unwrap_or(7)
                .clamp(7, 24) as u16,
        ),
        Constraint::Length(
            rows.iter()
                .map(|r| r.state_text.len())
                .max()
                .unwrap_or(5)
                .clamp(5, 20) as u16,
        ),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Min(10),
    ];
    let table = Table::new(table_rows, widths)
        .header(Row::new(HEADERS).style(Style::default().add_modifier(Modifier::BOLD)))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(Block::default().borders(Borders::TOP));
    frame.render_stateful_widget(table, area, &mut screen.table);
}

fn draw_logs(frame: &mut ratatui::Frame, area: Rect, service: &str, lines: Option<&LogLines>) {
    let text: Vec<Line> = match lines {
        None => vec![Line::from("reading the logs…")],
        Some(Err(why)) => vec![Line::styled(
            format!("cannot read the logs: {why}"),
            Style::default().fg(Color::Red),
        )],
        Some(Ok(lines)) if lines.is_empty() => vec![Line::from("(no log lines)")],
        Some(Ok(lines)) => {
            // The newest lines that fit.
            let fit = usize::from(area.height.saturating_sub(1));
            let skip = lines.len().saturating_sub(fit);
            lines
                .iter()
                .skip(skip)
                .map(|l| Line::from(l.as_str()))
                .collect()
        }
    };
    let title = format!(" logs of {service} ");
    frame.render_widget(
        Paragraph::new(text).block(Block::default().borders(Borders::TOP).title(title)),
        area,
    );
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
}
