//! `muster logs [SERVICES…]`: the project's container logs as `docker compose
//! logs` prints them, through the Engine API.
//!
//! Why: the stacks' runbook was `docker-compose logs SERVICE` next to muster;
//! muster already knows the project (its compose files, `-p`), so it reads the
//! same logs without a second tool. Every replica of a service is read at
//! once, each line prefixed `service-N  | ` (coloured by service on a
//! terminal only), and with `-f` a container that starts later (a restart, a
//! scale-up, a rollout's new replica) is followed too: learned from the
//! engine watcher `up` and the healer use (`engine::watch::Watcher`), which
//! reconnects a dropped event stream and lists what started meanwhile.

use std::collections::{BTreeSet, HashSet};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Args;
use futures_util::StreamExt;
use muster::compose::ComposeError;
use muster::engine::logs::{LogLine, LogQuery, LogStream};
use muster::engine::watch::{ContainerState, EngineMsg, Reconnect, Watcher};
use muster::engine::{Action, ContainerInfo, Engine};
use tokio::sync::mpsc;

use super::{CliResult, Global};

#[derive(Args, Debug, Default)]
pub struct LogsArgs {
    /// Services whose logs to show (default: all of the project's).
    pub services: Vec<String>,
    /// Follow: keep printing new lines, also of containers that start later,
    /// until Ctrl-C. `-f` after `logs` means this (before it, a compose file).
    #[arg(long)]
    pub follow: bool,
    /// Only lines since a time: a duration back from now (42m) or a time (2026-12-07T03:20:00Z, Unix seconds).
    #[arg(long, value_name = "TIME", value_parser = since_value)]
    pub since: Option<i64>,
    /// Only the last N lines of each container (`all` for every line).
    #[arg(short = 'n', long, value_name = "N", default_value = "all", value_parser = tail_value)]
    pub tail: Tail,
    /// Show the engine's timestamp of each line.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// No colours in the prefixes (the default when stdout is not a terminal, or NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,
    /// Only the lines, without the `service-N  | ` prefixes.
    #[arg(long)]
    pub no_log_prefix: bool,
}

/// `--tail`: every line, or the last N.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tail(pub Option<u64>);

/// Global flags that take a value (`-f FILE`, `--log FILTER`, …), to find
/// where the subcommand starts.
const GLOBAL_VALUE_FLAGS: &[&str] = &[
    "-f",
    "--file",
    "-p",
    "--project-name",
    "--profile",
    "--env-file",
    "--project-directory",
    "--config",
    "--redis-url",
    "--nats-url",
    "--namespace",
    "--listen",
    "--probe-address",
    "--state-file",
    "--webhook-url",
    "--webhook-ca-file",
    "--pull-parallel",
    "--telemetry-interval",
    "--log",
];

/// `muster logs -f` follows, as `docker compose logs -f` does, while `-f
/// FILE` before the subcommand stays the compose file (clap cannot give one
/// short flag two meanings, so `-f` after `logs` is rewritten to `--follow`).
pub fn follow_short_flag(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(bin) = iter.next() {
        out.push(bin);
    }
    let mut in_logs = false;
    let mut skip_value = false;
    while let Some(arg) = iter.next() {
        let text = arg.to_str().unwrap_or("");
        if in_logs {
            if text == "--" {
                in_logs = false;
            }
            out.push(if text == "-f" { "--follow".into() } else { arg });
            continue;
        }
        if skip_value {
            skip_value = false;
        } else if GLOBAL_VALUE_FLAGS.contains(&text) {
            skip_value = true;
        } else if !text.starts_with('-') {
            // The subcommand: only `logs` gets the rewrite, and nothing
            // after another subcommand is looked at.
            in_logs = text == "logs";
            if !in_logs {
                out.push(arg);
                out.extend(iter);
                return out;
            }
        }
        out.push(arg);
    }
    out
}

fn tail_value(text: &str) -> Result<Tail, String> {
    if text == "all" {
        return Ok(Tail(None));
    }
    text.parse::<u64>()
        .map(|n| Tail(Some(n)))
        .map_err(|_| format!("{text:?} is not a number of lines (give N >= 0, or `all`)"))
}

fn since_value(text: &str) -> Result<i64, muster::engine::logs::SinceError> {
    muster::engine::logs::parse_since(text, unix_now())
}

fn unix_now() -> i64 {
    i64::try_from(muster::clock::now_ms() / 1000).unwrap_or(i64::MAX)
}

/// Compose's prefix colours, one per service in name order.
const COLOURS: [&str; 10] = ["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"];

/// One line as `--json` prints it.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    service: &'a str,
    container: &'a str,
    number: u32,
    stream: LogStream,
    line: &'a str,
}

/// A container whose log is read, and how its lines are prefixed.
#[derive(Clone)]
struct Source {
    service: String,
    container: String,
    number: u32,
}

impl Source {
    fn of(c: &ContainerInfo) -> Source {
        Source {
            service: c.service.clone(),
            container: c.name.clone(),
            number: c.number,
        }
    }

    fn of_state(c: &ContainerState) -> Source {
        Source {
            service: c.service.clone(),
            container: c.name.clone(),
            number: c.number,
        }
    }

    fn label(&self) -> String {
        format!("{}-{}", self.service, self.number)
    }
}

/// The services of the project: from the compose files, or (no compose file,
/// but `-p`) from the containers the engine holds for the project.
type Services = (String, Option<BTreeSet<String>>);

fn project_services(global: &Global) -> Result<Services, Box<dyn std::error::Error + Send + Sync>> {
    match super::compose::load_project(global) {
        Ok(project) => Ok((
            project.name,
            Some(project.services.keys().cloned().collect()),
        )),
        Err(ComposeError::NoComposeFile { .. }) if global.project_name.is_some() => {
            Ok((global.project_name.clone().unwrap_or_default(), None))
        }
        Err(e) => Err(e.into()),
    }
}

/// Refuses a service the project does not have, naming the ones it has.
fn check_services(
    project: &str,
    wanted: &[String],
    known: &BTreeSet<String>,
) -> Result<(), String> {
    for name in wanted {
        if !known.contains(name) {
            let list = known.iter().cloned().collect::<Vec<_>>().join(", ");
            return Err(format!(
                "no service {name:?} in project {project} (its services: {list}); see `muster config --services`"
            ));
        }
    }
    Ok(())
}

pub fn run(global: &Global, args: &LogsArgs) -> CliResult {
    let (project, declared) = project_services(global)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let engine = Engine::connect().await?;
        let all = engine.list_project_containers(&project, None).await?;
        let known = declared
            .unwrap_or_else(|| all.iter().map(|c| c.service.clone()).collect::<BTreeSet<_>>());
        check_services(&project, &args.services, &known)?;
        let selected = |service: &str| args.services.is_empty() || args.services.iter().any(|s| s == service);
        let containers: Vec<ContainerInfo> = all.into_iter().filter(|c| selected(&c.service)).collect();
        if containers.is_empty() && !args.follow {
            if !global.json {
                eprintln!("muster logs: no containers of project {project} for these services (is the stack up?)");
            }
            return Ok(ExitCode::SUCCESS);
        }
        let colour = !args.no_color
            && !global.json
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stdout().is_terminal();
        let printer = Printer {
            width: containers.iter().map(|c| Source::of(c).label().len()).max().unwrap_or(0),
            services: known.iter().cloned().collect(),
            colour,
            json: global.json,
            prefix: !args.no_log_prefix,
        };
        let query = LogQuery {
            follow: args.follow,
            since: args.since,
            tail: args.tail.0,
            timestamps: args.timestamps,
        };
        let (tx, rx) = mpsc::channel::<(Source, LogLine)>(1024);
        let (err_tx, mut err_rx) = mpsc::unbounded_channel::<String>();
        // Containers whose log is being read now: a start event replayed
        // for one of them must not open a second reader.
        let following: Following = Default::default();
        for c in &containers {
            spawn_reader(&engine, c.id.clone(), Source::of(c), query.clone(), &following, tx.clone(), err_tx.clone());
        }
        if args.follow {
            // Containers that start later: a restart of a followed one (its
            // stream ended when it stopped), a new replica, a rollout's. They
            // are learned from the engine watcher `up` and the healer follow
            // (engine/watch.rs), so a dropped event stream is reconnected and
            // what started meanwhile is found in the resync's list.
            let watcher = Watcher::spawn(engine.clone(), project.clone(), Reconnect::default());
            let mut follower = watcher.subscribe();
            let engine2 = engine.clone();
            let tx2 = tx.clone();
            let err_tx2 = err_tx.clone();
            let wanted: Vec<String> = args.services.clone();
            let following = following.clone();
            let timestamps = query.timestamps;
            tokio::spawn(async move {
                // Kept as long as this task follows it.
                let _watcher = watcher;
                let wanted = |service: &str| wanted.is_empty() || wanted.iter().any(|s| s == service);
                let follow = |id: &str, source: Source, since_ns: Option<i128>| {
                    let since = since_ns.map(|ns| i64::try_from(ns / 1_000_000_000).unwrap_or(0));
                    let q = LogQuery { follow: true, since, tail: None, timestamps };
                    spawn_reader(&engine2, id.to_string(), source, q, &following, tx2.clone(), err_tx2.clone());
                };
                while let Some(msg) = follower.recv().await {
                    match msg {
                        EngineMsg::Event { event, state } => {
                            if event.action != Action::Start || !wanted(&event.service) {
                                continue;
                            }
                            let Some(state) = state else { continue };
                            follow(&event.container_id, Source::of_state(&state), Some(i128::from(event.time_nano)));
                        }
                        // The list after a (re)connect: a running container
                        // not read yet started while nobody listened.
                        EngineMsg::Resync { containers, .. } => {
                            for c in containers.iter().filter(|c| c.running && wanted(&c.service)) {
                                follow(&c.id, Source::of_state(c), c.started_ns);
                            }
                        }
                        EngineMsg::Down { error, retry_in } => {
                            tracing::warn!(%error, retry_in = %muster::duration::format(retry_in), "engine event stream lost; reconnecting");
                        }
                    }
                }
            });
        }
        drop(tx);
        drop(err_tx);
        let mut failed = false;
        let printed = tokio::spawn(print_lines(rx, printer));
        while let Some(error) = err_rx.recv().await {
            eprintln!("muster logs: {error}");
            failed = true;
        }
        let _ = printed.await;
        Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}

/// The ids of the containers whose log is being read.
type Following = Arc<Mutex<HashSet<String>>>;

/// Reads one container's log into `tx` until it ends (unless it is read already).
fn spawn_reader(
    engine: &Engine,
    id: String,
    source: Source,
    query: LogQuery,
    following: &Following,
    tx: mpsc::Sender<(Source, LogLine)>,
    errors: mpsc::UnboundedSender<String>,
) {
    let fresh = following.lock().map(|mut set| set.insert(id.clone()));
    if matches!(fresh, Ok(false)) {
        return;
    }
    let following = following.clone();
    let lines = engine.container_logs(&id, &query);
    tokio::spawn(async move {
        let mut lines = std::pin::pin!(lines);
        while let Some(line) = lines.next().await {
            match line {
                Ok(line) => {
                    if tx.send((source.clone(), line)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = errors.send(format!(
                        "{}: {}",
                        source.container,
                        muster::error_text::error_chain(&e)
                    ));
                    break;
                }
            }
        }
        if let Ok(mut set) = following.lock() {
            set.remove(&id);
        }
    });
}

struct Printer {
    width: usize,
    services: Vec<String>,
    colour: bool,
    json: bool,
    prefix: bool,
}

impl Printer {
    fn format(&mut self, source: &Source, line: &LogLine) -> String {
        if self.json {
            let json = JsonLine {
                service: &source.service,
                container: &source.container,
                number: source.number,
                stream: line.stream,
                line: &line.text,
            };
            return serde_json::to_string(&json).unwrap_or_default();
        }
        if !self.prefix {
            return line.text.clone();
        }
        let label = source.label();
        self.width = self.width.max(label.len());
        let padded = format!("{label:<width$}  |", width = self.width);
        if self.colour {
            let index = self
                .services
                .iter()
                .position(|s| *s == source.service)
                .unwrap_or(0);
            let code = COLOURS[index % COLOURS.len()];
            format!("\x1b[{code}m{padded}\x1b[0m {}", line.text)
        } else {
            format!("{padded} {}", line.text)
        }
    }
}

/// Writes lines as they come; stops quietly when stdout is closed (`| head`).
async fn print_lines(mut rx: mpsc::Receiver<(Source, LogLine)>, mut printer: Printer) {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    while let Some((source, line)) = rx.recv().await {
        let text = printer.format(&source, &line);
        if writeln!(out, "{text}").is_err() {
            std::process::exit(0);
        }
        // Flush when nothing else is waiting, so `-f` shows lines at once.
        if rx.is_empty() && out.flush().is_err() {
            std::process::exit(0);
        }
    }
    let _ = out.flush();
}

/// The last `lines` lines of every container of `service`, oldest first
/// across replicas (by the engine's timestamps), each `service-N  | line`
/// (for the log pane of `status --watch`).
pub(super) async fn recent(
    engine: &Engine,
    project: &str,
    service: &str,
    lines: u64,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let containers = engine
        .list_project_containers(project, Some(service))
        .await?;
    let query = LogQuery {
        follow: false,
        since: None,
        tail: Some(lines),
        timestamps: true,
    };
    let mut out = Vec::new();
    for c in &containers {
        let source = Source::of(c);
        let mut stream = std::pin::pin!(engine.container_logs(&c.id, &query));
        while let Some(line) = stream.next().await {
            let line = line?;
            let (stamp, text) = line.text.split_once(' ').unwrap_or(("", &line.text));
            let at = muster::engine::parse_rfc3339_ns(stamp).unwrap_or(0);
            out.push((at, format!("{}  | {text}", source.label())));
        }
    }
    // Stable: lines of one container with the same time keep their order.
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().map(|(_, line)| line).collect())
}

#[cfg(test)]
mod tests {
    use super::follow_short_flag;

    fn rewrite(args: &[&str]) -> Vec<String> {
        follow_short_flag(args.iter().map(|a| (*a).into()).collect())
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn dash_f_after_logs_follows_and_before_it_is_the_file() {
        assert_eq!(
            rewrite(&["muster", "-f", "logs", "logs", "-f", "web"]),
            ["muster", "-f", "logs", "logs", "--follow", "web"]
        );
        assert_eq!(
            rewrite(&["muster", "--log", "info", "up", "-f", "x"]),
            ["muster", "--log", "info", "up", "-f", "x"]
        );
        assert_eq!(rewrite(&["muster", "logs"]), ["muster", "logs"]);
    }
}
