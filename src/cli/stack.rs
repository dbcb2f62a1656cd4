//! `muster up`, `muster down`, `muster ps`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use muster::compose::Project;
use muster::config::Settings;
use muster::engine::Engine;
use muster::health;
use muster::supervisor::lock::{LockError, SupervisorLock};
use muster::supervisor::runner::StatusWrite;
use muster::supervisor::start::{BuildPolicy, ProbeGate, UpOptions, UpOutcome};
use muster::supervisor::supervise::Supervision;
use muster::supervisor::{ServiceState, StateStore, Writer};

use super::{CliResult, DownArgs, Global, UpArgs};

fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn load_project(global: &Global) -> Result<Project, Box<dyn std::error::Error + Send + Sync>> {
    Ok(super::compose::load_project(global)?)
}

/// The project name: `-p`, else the loaded compose project's.
fn project_name(global: &Global) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    match &global.project_name {
        Some(name) => Ok(name.clone()),
        None => Ok(load_project(global)?.name),
    }
}

/// The health endpoint, bound but not serving yet: bound first, so that the
/// supervisor lock can name its address.
pub(super) struct Endpoint {
    listener: tokio::net::TcpListener,
    options: health::ServerOptions,
}

/// Binds the health endpoint of `project`: `listen` as set, else the first
/// free one of the project's derived ports.
pub(super) async fn bind_endpoint(
    settings: &Settings,
    project: &Project,
) -> Result<Endpoint, Box<dyn std::error::Error + Send + Sync>> {
    let (mut options, addrs) = settings.server(&project.name, &project.config_files)?;
    let listener = health::bind_first(&addrs).await?;
    let addr = listener.local_addr()?;
    options.listen = addr;
    if let Some(identity) = options.identity.as_mut() {
        identity.listen = addr.to_string();
    }
    Ok(Endpoint { listener, options })
}

/// One supervising muster per project: refused, naming the first one's pid
/// and address, when another holds the project's lock. A store that cannot
/// keep the lock (an unwritable state file) is a warning, not a refusal:
/// supervising matters more than the guard.
pub(super) async fn lock_project(
    settings: &Settings,
    project: &Project,
    endpoint: Option<&Endpoint>,
) -> Result<Option<SupervisorLock>, Box<dyn std::error::Error + Send + Sync>> {
    let listen = endpoint.map(|e| e.options.listen);
    match SupervisorLock::take(&settings.history(), &project.name, listen).await {
        Ok(lock) => Ok(Some(lock)),
        Err(e @ LockError::Held { .. }) => Err(e.into()),
        Err(e @ LockError::Store { .. }) => {
            tracing::warn!(error = %muster::error_text::error_chain(&e), "supervising without the project lock: a second muster for this project would not be refused");
            Ok(None)
        }
    }
}

/// Serves the bound health endpoint until SIGTERM/SIGINT.
pub(super) fn start_health_server(
    endpoint: Endpoint,
    store: &StateStore,
) -> tokio::task::JoinHandle<()> {
    let Endpoint { listener, options } = endpoint;
    let addr = options.listen;
    tracing::info!(%addr, "health endpoint listening");
    eprintln!(
        "muster: health endpoint on http://{addr}/ (status page), /readyz, /status, /metrics"
    );
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = health::serve(listener, store, options, health::shutdown_signal()).await {
            tracing::error!(error = %e, "health endpoint stopped");
        }
    })
}

/// muster's probes for the project (the runner becomes the one writer of
/// `writer`'s store), with tuned grace
/// periods, and the recorder that learns start-up times (issue 7).
async fn start_supervision(
    project: &Project,
    settings: &Settings,
    engine: &Engine,
    writer: Writer,
    running_stack: bool,
) -> Result<
    (Supervision, muster::supervisor::learn::Recorder),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let published = muster::supervisor::plan::published_ports_from_model(project);
    let grace = muster::grace::GraceRun::prepare(project, &settings.grace_options(), engine).await;
    let plan = muster::supervisor::plan::plan_with_grace(
        project,
        &settings.plan(),
        Some(engine.docker().clone()),
        published,
        running_stack,
        &grace.decisions,
    )?;
    // The recorder follows the store from before the first `starting`; the
    // grace it re-tunes goes to the runner, which exists only afterwards.
    // The runner's channel exists before the runner: the recorder's writes
    // wait there for it (the runner is the one writer of service state).
    let (writes, inbox) = muster::supervisor::runner::inbox(writer);
    let (retuned, mut to_runner) = tokio::sync::mpsc::unbounded_channel();
    let recorder = grace.spawn_recorder(&writes, engine, &project.name, Some(retuned));
    let supervision = Supervision::start_on(inbox, plan, running_stack);
    let control = supervision.controller();
    tokio::spawn(async move {
        while let Some(muster::supervisor::learn::Retuned { service, grace }) =
            to_runner.recv().await
        {
            let c = muster::supervisor::runner::Control::SetGrace { service, grace };
            if control.send(c).is_err() {
                break;
            }
        }
    });
    grace.publish(&writes);
    Ok((supervision, recorder))
}

/// `muster serve`: supervise a stack that is already running and serve the
/// health endpoint. Services without muster probes are followed through the
/// engine (running, or the Docker healthcheck).
pub fn serve(global: &Global, settings: &Settings) -> CliResult {
    let project = load_project(global)?;
    runtime()?.block_on(async move {
        let endpoint = bind_endpoint(settings, &project).await?;
        let lock = lock_project(settings, &project, Some(&endpoint)).await?;
        let engine = Engine::connect().await?;
        let writer = Writer::new(&project.name);
        let store = writer.store();
        let graph = muster::compose::graph::Graph::new(&project)?;
        let (mut supervision, _recorder) =
            start_supervision(&project, settings, &engine, writer, true).await?;
        supervision.start_healing(
            muster::supervisor::heal::HealOptions::from_config(
                &engine,
                &project,
                &settings.heal(),
                muster::supervisor::heal::HealMode::Serve,
            )
            .await?,
        );
        let writes = supervision.writes();
        for name in project.services.keys() {
            let depends_on: Vec<String> = graph
                .dependencies(name)
                .iter()
                .map(|d| d.to_string())
                .collect();
            let level = graph.level_of(name).unwrap_or(0);
            let image = project.services[name].image.clone();
            writes.status(
                name,
                StatusWrite::Placed {
                    image,
                    depends_on,
                    level,
                    waiting: None,
                },
            );
        }
        start_health_server(endpoint, &store).await?;
        if let Some(lock) = lock {
            lock.release().await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn up(global: &Global, settings: &Settings, args: &UpArgs) -> CliResult {
    let wait_timeout = match &args.wait_timeout {
        Some(text) => Some(
            muster::duration::parse(text).map_err(|e| format!("--wait-timeout {text:?}: {e}"))?,
        ),
        None => None,
    };
    let mut project = load_project(global)?;
    runtime()?.block_on(async move {
        let keep_running = args.watch || args.serve;
        // A supervising up takes the project's lock before it touches anything.
        let endpoint = match args.serve {
            true => Some(bind_endpoint(settings, &project).await?),
            false => None,
        };
        let lock = match keep_running {
            true => lock_project(settings, &project, endpoint.as_ref()).await?,
            false => None,
        };
        let engine = Engine::connect().await?;
        // Rollouts: finish an interrupted one, keep the revision one made (issue 8).
        super::rollout::prepare_up(global, settings, &engine, &args.services, &mut project).await?;
        let writer = Writer::new(&project.name);
        let store = writer.store();
        // `up SERVICES`: only what this up starts is supervised and counted
        // in /readyz.
        let supervised = muster::supervisor::start::selected_project(
            &project,
            &args.services,
            args.no_deps,
        )?;
        let (mut supervision, recorder) =
            start_supervision(&supervised, settings, &engine, writer, false).await?;
        if keep_running {
            supervision.start_healing(
                muster::supervisor::heal::HealOptions::from_config(
                    &engine,
                    &supervised,
                    &settings.heal(),
                    muster::supervisor::heal::HealMode::Up,
                )
                .await?,
            );
        }
        let server = endpoint.map(|endpoint| start_health_server(endpoint, &store));
        let probed: std::collections::BTreeSet<String> = store
            .snapshot()
            .services
            .iter()
            .filter(|(_, s)| !s.probes.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            // Ctrl-C or SIGTERM: pulls and builds stop, nothing more is created.
            health::shutdown_signal().await;
            let _ = cancel_tx.send(true);
        });
        let (printed_tx, printed_rx) = tokio::sync::oneshot::channel();
        let printer = if global.json {
            tokio::spawn(print_json_events(store.clone(), store.events(), printed_rx))
        } else {
            tokio::spawn(print_live_lines(store.watch(), printed_rx))
        };
        // Pull progress: live lines on a terminal, start/end lines, or JSON.
        let (pull_events, pull_rx) = tokio::sync::broadcast::channel(1024);
        let (pulls_done, pulls_done_rx) = tokio::sync::oneshot::channel();
        let pull_printer = super::pull::spawn_printer(
            pull_rx,
            super::pull::Mode::choose(global.json, false),
            pulls_done_rx,
        );
        let options = UpOptions {
            services: args.services.clone(),
            no_deps: args.no_deps,
            wait_timeout,
            cancel: Some(cancel_rx),
            probe_gate: Some(ProbeGate {
                services: probed,
            }),
            build: if args.build {
                BuildPolicy::Always
            } else if args.no_build {
                BuildPolicy::Never
            } else {
                BuildPolicy::Missing
            },
            pull: args.pull,
            pull_options: settings.pull(),
            pull_events: Some(pull_events),
            // One engine event stream: `up` follows the healer's watcher.
            watcher: supervision.healer().map(|h| h.watcher().clone()),
        };
        let result = muster::supervisor::start::up(&engine, &project, &options, &supervision.writes())
                .await;
        supervision.up_finished();
        let _ = pulls_done.send(());
        let _ = pull_printer.await;
        // The printer prints what is left, then ends.
        let _ = printed_tx.send(());
        let _ = printer.await;
        let report = result?;
        let snap = store.snapshot();
        if global.json {
            let line = serde_json::json!({ "result": report, "services": snap.services.values().map(|s| serde_json::json!({
                "service": s.name, "state": s.state, "reason": s.reason, "containers": s.container_ids,
            })).collect::<Vec<_>>() });
            println!("{line}");
        } else {
            for skipped in &report.skipped {
                println!("warning: optional dependency {skipped} is not defined; skipped");
            }
            println!();
            println!("{:<24} {:<10} {:<5} DETAIL", "SERVICE", "STATE", "LEVEL");
            for name in &report.services {
                if let Some(s) = snap.services.get(name) {
                    println!("{:<24} {:<10} {:<5} {}", s.name, s.state, s.level, s.reason);
                }
            }
            let secs = report.elapsed.as_secs_f64();
            match report.outcome {
                UpOutcome::Ready => println!("\n{}: ready in {secs:.1} s", report.project),
                UpOutcome::Failed => println!(
                    "\n{}: {} failed, {} blocked ({secs:.1} s)",
                    report.project,
                    snap.count_in(ServiceState::Failed),
                    snap.count_in(ServiceState::Blocked)
                ),
                UpOutcome::TimedOut => println!(
                    "\n{}: not ready after {secs:.1} s (--wait-timeout); started containers keep running",
                    report.project
                ),
                UpOutcome::Cancelled => {
                    let stopped = snap
                        .services
                        .values()
                        .filter(|s| s.reason.starts_with("interrupted while"))
                        .count();
                    let pulls = match stopped {
                        0 => String::new(),
                        n => format!(
                            "; {n} pull(s) or build(s) stopped with no container created (run up again to resume)"
                        ),
                    };
                    println!(
                        "\n{}: interrupted after {secs:.1} s; started containers keep running{pulls}",
                        report.project
                    )
                }
            }
        }
        let code = if report.outcome == UpOutcome::Ready {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
        if keep_running && report.outcome != UpOutcome::Cancelled {
            eprintln!("muster: supervising {} (Ctrl-C to stop; containers keep running)", report.project);
            let (_printing, printing_rx) = tokio::sync::oneshot::channel::<()>();
            let printer = if global.json {
                tokio::spawn(print_json_events(store.clone(), store.events(), printing_rx))
            } else {
                tokio::spawn(print_live_lines(store.watch(), printing_rx))
            };
            match server {
                Some(server) => server.await?,
                None => health::shutdown_signal().await,
            }
            printer.abort();
        }
        recorder.finish(Duration::from_secs(15)).await;
        drop(supervision);
        if let Some(lock) = lock {
            lock.release().await;
        }
        Ok(code)
    })
}

/// One line per service each time its state or reason changes; after `done`
/// fires (or its sender is dropped), prints what is left and returns.
async fn print_live_lines(
    mut rx: tokio::sync::watch::Receiver<std::sync::Arc<muster::supervisor::StackSnapshot>>,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    let mut seen: HashMap<String, (ServiceState, String)> = HashMap::new();
    let mut finished = false;
    loop {
        {
            let snap = rx.borrow_and_update();
            let width = snap.services.keys().map(String::len).max().unwrap_or(8);
            for s in snap.services.values() {
                let now = (s.state, s.reason.clone());
                if seen.get(&s.name) == Some(&now) {
                    continue;
                }
                let line = match s.state {
                    ServiceState::Failed => format!("failed: {}", s.reason),
                    _ if s.reason.is_empty() => s.state.to_string(),
                    _ => s.reason.clone(),
                };
                println!("{:<width$}  {line}", s.name);
                seen.insert(s.name.clone(), now);
            }
        }
        if finished {
            return;
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = &mut done => finished = true,
        }
    }
}

/// One JSON state event per line; after `done` fires (or its sender is
/// dropped), prints the events already sent and returns.
async fn print_json_events(
    store: StateStore,
    mut events: tokio::sync::broadcast::Receiver<muster::supervisor::StateEvent>,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let print = |event: &muster::supervisor::StateEvent| {
        if let Ok(line) = serde_json::to_string(event) {
            println!("{line}");
        }
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => print(&event),
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "state events came faster than they were printed");
                }
                Err(RecvError::Closed) => return,
            },
            _ = &mut done => {
                // The last change `up` saw may still be on its way in.
                store.sync();
                loop {
                    match events.try_recv() {
                        Ok(event) => print(&event),
                        Err(TryRecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

pub fn down(global: &Global, args: &DownArgs) -> CliResult {
    let project = project_name(global)?;
    runtime()?.block_on(async move {
        let engine = Engine::connect().await?;
        let report = muster::supervisor::stack::down(&engine, &project, args.volumes).await?;
        if global.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            for c in &report.containers {
                println!("removed container {c}");
            }
            for n in &report.networks {
                println!("removed network {n}");
            }
            for v in &report.volumes {
                println!("removed volume {v}");
            }
            if report.containers.is_empty() && report.networks.is_empty() {
                println!("{project}: nothing to remove");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn ps(global: &Global) -> CliResult {
    let project = project_name(global)?;
    runtime()?.block_on(async move {
        let engine = Engine::connect().await?;
        let rows = muster::supervisor::stack::ps(&engine, &project).await?;
        if global.json {
            println!("{}", serde_json::to_string(&rows)?);
            return Ok(ExitCode::SUCCESS);
        }
        let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
        println!(
            "{:<width$}  {:<16} {:<10} {:<10} {:<8} {:<19} PORTS",
            "NAME", "SERVICE", "STATE", "HEALTH", "UPTIME", "IMAGE ID"
        );
        for r in &rows {
            let state = match r.exit_code {
                Some(code) => format!("{} ({code})", r.state),
                None => r.state.clone(),
            };
            let ports = r
                .ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "{:<width$}  {:<16} {:<10} {:<10} {:<8} {:<19} {ports}",
                r.name,
                r.service,
                state,
                r.health.as_deref().unwrap_or("-"),
                r.uptime_s
                    .map(muster::supervisor::stack::format_uptime)
                    .unwrap_or_else(|| "-".into()),
                super::build::short_id(&r.image_id),
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
