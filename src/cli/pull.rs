//! `muster pull`, and the pull progress that `up` and `rollout --image`
//! share: on a terminal one live line per image (bytes done / total, rate,
//! ETA, layers); otherwise a start and an end line per image; with `--json`
//! one event per line, at most one progress event per image per second.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use muster::config::Settings;
use muster::engine::{pull::human_bytes, Engine};
use muster::supervisor::start::images::{self, PullEvent, PullThrottle};
use tokio::sync::{broadcast, oneshot};

use super::{CliResult, Global, PullArgs};

/// How pull progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// indicatif lines on a terminal (stderr).
    Live,
    /// A start and an end line per image (stdout).
    Plain,
    /// JSON events (stdout).
    Json,
    Quiet,
}

impl Mode {
    pub(super) fn choose(json: bool, quiet: bool) -> Mode {
        if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

/// Prints pull events until `done` fires (then what is already sent) or
/// every sender is gone.
pub(super) fn spawn_printer(
    mut events: broadcast::Receiver<PullEvent>,
    mode: Mode,
    mut done: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut printer = Printer::new(mode);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => printer.show(&event),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = &mut done => {
                    while let Ok(event) = events.try_recv() {
                        printer.show(&event);
                    }
                    break;
                }
            }
        }
        printer.finish();
    })
}

struct Printer {
    mode: Mode,
    bars: indicatif::MultiProgress,
    live: HashMap<String, indicatif::ProgressBar>,
    /// At most one JSON progress event per image a second.
    throttle: PullThrottle,
}

impl Printer {
    fn new(mode: Mode) -> Printer {
        Printer {
            mode,
            bars: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr_with_hz(4),
            ),
            live: HashMap::new(),
            throttle: PullThrottle::default(),
        }
    }

    fn show(&mut self, event: &PullEvent) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => self.json(event),
            Mode::Plain => plain(event),
            Mode::Live => self.live(event),
        }
    }

    fn json(&mut self, event: &PullEvent) {
        if let PullEvent::Progress(p) = event {
            if !self.throttle.admit(&p.image, Instant::now()) {
                return;
            }
        }
        if let Ok(line) = serde_json::to_string(event) {
            println!("{line}");
        }
    }

    fn live(&mut self, event: &PullEvent) {
        match event {
            PullEvent::Started { image, .. } => {
                let bar = self.bars.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {prefix} {wide_msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.set_prefix(image.clone());
                bar.set_message("waiting for the registry");
                bar.enable_steady_tick(Duration::from_millis(250));
                self.live.insert(image.clone(), bar);
            }
            PullEvent::Progress(p) => {
                if let Some(bar) = self.live.get(&p.image) {
                    bar.set_message(p.summary());
                }
            }
            PullEvent::Done(done) => {
                if let Some(bar) = self.live.remove(&done.image) {
                    bar.finish_with_message(done_text(done));
                }
            }
            PullEvent::Failed { image, error, .. } => {
                if let Some(bar) = self.live.remove(image) {
                    bar.abandon_with_message(format!("failed: {error}"));
                }
            }
        }
    }

    fn finish(&mut self) {
        for (_, bar) in self.live.drain() {
            bar.abandon();
        }
    }
}

fn done_text(done: &muster::engine::PullDone) -> String {
    let secs = done.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        format!(
            ", {}/s",
            human_bytes((done.downloaded as f64 / secs) as u64)
        )
    } else {
        String::new()
    };
    format!(
        "pulled {} in {secs:.1} s{rate}, {} layers",
        human_bytes(done.downloaded),
        done.layers
    )
}

fn plain(event: &PullEvent) {
    match event {
        PullEvent::Started { image, services } if services.is_empty() => {
            println!("pulling {image}")
        }
        PullEvent::Started { image, services } => {
            println!("pulling {image} (for {})", services.join(", "))
        }
        PullEvent::Progress(_) => {}
        PullEvent::Done(done) => println!("{}: {}", done.image, done_text(done)),
        PullEvent::Failed { image, error, .. } => println!("{image}: pull failed: {error}"),
    }
}

/// `muster pull [SERVICES…] [--ignore-pull-failures] [--quiet]`.
pub fn run(global: &Global, settings: &Settings, args: &PullArgs) -> CliResult {
    let project = super::compose::load_project(global)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let engine = Engine::connect().await?;
        let (events, rx) = broadcast::channel(1024);
        let (done_tx, done_rx) = oneshot::channel();
        let printer = spawn_printer(rx, Mode::choose(global.json, args.quiet), done_rx);
        let result =
            images::pull_project(&engine, &project, &args.services, &settings.pull(), events).await;
        let _ = done_tx.send(());
        let _ = printer.await;
        let report = result?;
        let fatal = report
            .failed
            .iter()
            .filter(|f| !f.buildable && !args.ignore_pull_failures)
            .count();
        if global.json {
            println!("{}", serde_json::json!({ "result": report }));
        } else {
            for (image, why) in &report.skipped {
                println!("{image}: skipped ({why})");
            }
            for failed in &report.failed {
                let note = if failed.buildable {
                    " (a service builds it; ignored)"
                } else if args.ignore_pull_failures {
                    " (ignored: --ignore-pull-failures)"
                } else {
                    ""
                };
                eprintln!(
                    "muster: error: {} (services {}): {}{note}",
                    failed.image,
                    failed.services.join(", "),
                    failed.error
                );
            }
            println!(
                "{}: {} pulled, {} skipped, {} failed",
                project.name,
                report.pulled.len(),
                report.skipped.len(),
                report.failed.len()
            );
        }
        Ok(if fatal > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}
