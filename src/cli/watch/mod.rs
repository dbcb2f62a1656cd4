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

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use muster::config::Settings;
use muster::supervisor::{ServiceState, StackSnapshot};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::status::Source;

pub mod log_sink;
mod rows;
use super::status::Resources;
use super::{CliResult, Global, StatusArgs};
use rows::{
    cells, clock, events, next_filter, state_colour, table_text, Observed, RowView, HEADERS,
};

/// The smallest terminal the view fits in.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 12;
/// State changes kept and shown.
pub(super) const EVENTS: usize = 8;
/// Log lines per container in the log pane.
const LOG_LINES: u64 = 200;

/// What the poller thread sends to the screen.
enum Feed {
    Snapshot(Box<StackSnapshot>, Resources, String, Option<String>),
    Failed(String),
    Logs(String, LogLines),
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
            let item = match super::status::snapshot_with_resources(
                &global, &settings, direct, &runtime,
            ) {
                Ok((snapshot, resources, source, note)) => {
                    let from = match source {
                        Source::Live(addr) => format!("live from the muster at {addr}"),
                        Source::Probed(mode) => format!("probed directly ({})", mode.as_str()),
                    };
                    Feed::Snapshot(Box::new(snapshot), resources, from, note)
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
    if tui {
        // From before the poller's first line until the terminal is back.
        log_sink::hold();
    }
    let result = std::thread::scope(|scope| {
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
    });
    log_sink::release();
    result
}

/// Over a pipe: one table (or one JSON snapshot line) per poll, until the
/// reader goes away or Ctrl-C.
fn plain(json: bool, feed: mpsc::Receiver<Feed>) -> CliResult {
    let mut observed = Observed::default();
    let mut out = std::io::stdout();
    for item in feed {
        let text = match item {
            Feed::Snapshot(snapshot, resources, from, note) => {
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
                    text.push_str(&table_text(&snapshot, &resources, live, &observed));
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

/// A service's recent log lines, or why they could not be read.
type LogLines = Result<Vec<String>, String>;

/// What the screen shows now.
struct Screen {
    snapshot: Option<StackSnapshot>,
    resources: Resources,
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
        rows::rows(
            snapshot,
            &self.resources,
            muster::clock::now_ms(),
            self.live(),
            &self.observed,
            self.filter,
        )
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
        resources: Resources::new(),
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
                Feed::Snapshot(snapshot, resources, from, note) => {
                    screen.observed.update(&snapshot);
                    screen.resources = resources;
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
                    screen.logs = Some((row.service.clone(), None));
                    let _ = logs.send((snapshot.project.clone(), row.service.clone()));
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
    // muster's own warnings go to the status bar, not over the screen.
    let mut bar = vec![ratatui::text::Span::styled(
        help,
        Style::default().fg(Color::DarkGray),
    )];
    if let Some(warning) = log_sink::latest() {
        bar.push(ratatui::text::Span::styled(
            format!(" · {warning}"),
            Style::default().fg(Color::Yellow),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(bar)), keys);
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
                .clamp(7, 30) as u16,
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
        Constraint::Length(5),
        Constraint::Length(17),
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
