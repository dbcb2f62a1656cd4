//! `muster up --swarm`: prints the deploy's progress (one line per network,
//! creation, task change and ready service) or, with `--json`, one JSON
//! report at the end, with each service's tasks (node, task id, state,
//! reason, probe result).

use std::process::ExitCode;

use muster::config::Settings;
use muster::engine::Engine;
use muster::health;
use muster::history::HistoryStore;
use muster::rollout::revisions::Kind;
use muster::supervisor::Writer;
use muster::swarm::rollout::{RolloutOptions, RolloutReport};
use muster::swarm::{self, Progress, SwarmError, SwarmOptions};

use super::swarm_history::{Ended, SwarmRevisions};
use super::{CliResult, Global, RollbackArgs, RolloutArgs, UpArgs};

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// One progress line for a terminal.
fn line(p: &Progress) -> String {
    match p {
        Progress::Ignored(i) => format!("warning: {i}"),
        Progress::NodeDown(d) => format!("warning: {d}"),
        Progress::NoHealthcheck { service } => format!(
            "warning: service {service} has no healthcheck in its Swarm spec: Swarm counts a \
             new task as updated once it runs, so an image that runs but does not answer takes \
             requests and a start-first update stops an old task for it (muster rolls back \
             after --progress-deadline); add a compose `healthcheck` (muster carries it into \
             the spec), unless the image declares one"
        ),
        Progress::Network { name, created } => match created {
            true => format!("network {name}: created (overlay, attachable)"),
            false => format!("network {name}: exists, used as it is"),
        },
        Progress::Waiting { service, on } => {
            format!("{service}: waiting for {}", on.join(", "))
        }
        Progress::Created {
            service,
            name,
            level,
            created,
            updated,
        } => match (created, updated) {
            (true, _) => format!("{service}: created service {name} (level {level})"),
            (false, true) => format!(
                "{service}: service {name} updated to the changed compose file (level {level})"
            ),
            (false, false) => {
                format!("{service}: service {name} exists, not changed (level {level})")
            }
        },
        Progress::Task { service, state } => {
            let t = &state.task;
            let mut text = format!(
                "{service}: task {} on {}: {}",
                short(&t.task_id),
                t.node,
                t.state
            );
            if let Some(a) = &t.address {
                text.push_str(&format!(" at {a}"));
            }
            if !t.reason.is_empty() && t.state != "running" {
                text.push_str(&format!(" ({})", t.reason));
            }
            if state.ready && !state.probe.is_empty() {
                text.push_str(&format!(", ready: {}", state.probe));
            } else if state.ready {
                text.push_str(", ready");
            } else if !state.probe.is_empty() {
                text.push_str(&format!(", {}", state.probe));
            }
            text
        }
        Progress::Ready {
            service,
            ready,
            required,
        } => format!("{service}: ready ({ready}/{required} tasks)"),
    }
}

/// Runs one swarm command on a runtime of its own, against DOCKER_HOST.
fn block<T, F>(
    work: impl FnOnce(Engine) -> F,
) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
where
    F: std::future::Future<Output = Result<T, muster::swarm::SwarmError>>,
{
    block_any(|engine| async move { Ok(work(engine).await?) })
}

/// [`block`] for work with any error.
fn block_any<T, F>(
    work: impl FnOnce(Engine) -> F,
) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
where
    F: std::future::Future<Output = Result<T, Box<dyn std::error::Error + Send + Sync>>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let engine = Engine::connect().await?;
        work(engine).await
    })
}

/// The report as JSON, or the one summary line.
fn finish<T: serde::Serialize>(json: bool, report: &T, summary: String) -> CliResult {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `muster up --swarm [SERVICES] [--serve]`.
pub fn up(global: &Global, settings: &Settings, args: &UpArgs) -> CliResult {
    let wait_timeout = match &args.wait_timeout {
        Some(text) => Some(
            muster::duration::parse(text).map_err(|e| format!("--wait-timeout {text:?}: {e}"))?,
        ),
        None => None,
    };
    let project = super::compose::load_project(global)?;
    let project = muster::supervisor::start::selected_project(&project, &args.services, false)?;
    let json = global.json;
    let options = SwarmOptions {
        wait_timeout,
        signals: Some(settings.watcher()),
    };
    if args.serve {
        return serve(settings, &project, &options, json);
    }
    let report = block(|engine| async move {
        swarm::deploy(&engine, &project, &options, &printer(json)).await
    })?;
    finish(json, &report, deployed(&report))
}

fn deployed(report: &swarm::DeployReport) -> String {
    format!(
        "stack {}: {} services ready on {} nodes in {:.1}s (manager {})",
        report.stack,
        report.services.len(),
        report.manager.node_count,
        report.elapsed_ms as f64 / 1000.0,
        report.manager.node
    )
}

/// `up --swarm --serve`: the deploy, its report (a line, or one JSON
/// document), then supervision with the health endpoint until SIGTERM/SIGINT.
fn serve(
    settings: &Settings,
    project: &muster::compose::Project,
    options: &SwarmOptions,
    json: bool,
) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let endpoint = super::stack::bind_endpoint(settings, project).await?;
        // One supervising muster per project, on Swarm as on one host.
        let lock = super::stack::lock_project(settings, project, Some(&endpoint)).await?;
        let history = HistoryStore::open(&settings.history(), &project.name).await;
        let engine = Engine::connect().await?;
        let report = swarm::deploy(&engine, project, options, &printer(json)).await?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!("{}", deployed(&report));
        }
        // `supervise` is the one writer of this store (no probe runner on Swarm).
        let store = Writer::new(&project.name);
        let server = super::stack::start_health_server(endpoint, &store);
        muster::supervisor::swarm::supervise(
            &engine,
            project,
            &report,
            &store,
            Some(&history),
            options.signals.as_ref(),
            health::shutdown_signal(),
        )
        .await;
        server.abort();
        if let Some(lock) = lock {
            lock.release().await;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A progress printer: lines on stdout (warnings on stderr), or with `--json`
/// only the warnings, on stderr.
fn printer(json: bool) -> impl Fn(Progress) + Send + Sync {
    move |p: Progress| {
        let warning = matches!(
            p,
            Progress::Ignored(_) | Progress::NodeDown(_) | Progress::NoHealthcheck { .. }
        );
        if warning {
            eprintln!("muster: {}", line(&p));
        } else if !json {
            println!("{}", line(&p));
        }
    }
}

fn duration(flag: &str, text: &Option<String>) -> Result<Option<std::time::Duration>, String> {
    text.as_ref()
        .map(|t| muster::duration::parse(t).map_err(|e| format!("{flag} {t:?}: {e}")))
        .transpose()
}

/// `muster rollout SERVICE --image REF --swarm`: the rollout, recorded as a
/// revision in the history store (the image that ran before as a baseline
/// the first time).
pub fn rollout(global: &Global, settings: &Settings, args: &RolloutArgs) -> CliResult {
    let (service, image) = match (args.services.as_slice(), args.image.as_slice()) {
        ([service], [image]) => {
            let image = image
                .strip_prefix(&format!("{service}="))
                .unwrap_or(image)
                .to_string();
            (service.clone(), image)
        }
        _ => {
            return Err("rollout --swarm takes one SERVICE and one --image REF \
                        (e.g. `muster rollout api --image acme/api:2 --swarm`)"
                .into())
        }
    };
    let options = rollout_options(settings, &args.tuning)?;
    let project = super::compose::load_project(global)?;
    let report = roll(global, settings, &project, &service, &image, &options, None)?;
    let summary = format!(
        "{}: rolled out {} -> {} on {} tasks in {:.1}s",
        report.service,
        report.from_image,
        report.to_image,
        report.tasks.iter().filter(|t| t.ready).count(),
        report.elapsed_ms as f64 / 1000.0
    );
    finish(global.json, &report, summary)
}

fn rollout_options(
    settings: &Settings,
    tuning: &super::rollout::TuningArgs,
) -> Result<RolloutOptions, String> {
    Ok(RolloutOptions {
        parallelism: tuning.parallelism,
        order: tuning.order.clone(),
        delay: duration("--delay", &tuning.delay)?,
        deadline: duration("--progress-deadline", &tuning.progress_deadline)?,
        signals: Some(settings.watcher()),
    })
}

/// One Swarm rollout to `image`, recorded in the history store (`rollback`:
/// the revision it returns to).
fn roll(
    global: &Global,
    settings: &Settings,
    project: &muster::compose::Project,
    service: &str,
    image: &str,
    options: &RolloutOptions,
    rollback: Option<u64>,
) -> Result<RolloutReport, Box<dyn std::error::Error + Send + Sync>> {
    let json = global.json;
    block_any(|engine| async move {
        let store = HistoryStore::open(&settings.history(), &project.name).await;
        let mut history = SwarmRevisions::open(&store, project, service).await?;
        let started = muster::clock::now_ms();
        let result =
            swarm::rollout::rollout(&engine, project, service, image, options, &printer(json))
                .await;
        let running_before = match &result {
            Ok(report) => Some(report.from_image.clone()),
            Err(SwarmError::RolledBack(b)) => Some(b.previous.clone()),
            Err(_) => None,
        };
        if let Some(before) = running_before {
            let previous = history.baseline(&before).await?;
            let ended = Ended::from(image, &result, |r| {
                r.tasks.iter().filter(|t| t.ready).count() as u32
            });
            let kind = match rollback {
                Some(to) => Kind::Rollback { to },
                None => Kind::Rollout,
            };
            let revision = history.record(kind, Some(previous), started, ended).await?;
            tracing::info!(
                service,
                revision = revision.number,
                outcome = revision.outcome.as_str(),
                "revision recorded"
            );
            if !json {
                println!(
                    "{service}: revision {} ({}) in {}",
                    revision.number,
                    revision.outcome.as_str(),
                    store.describe()
                );
            }
        }
        Ok(result?)
    })
}

/// `muster rollback SERVICE --swarm [--to REV]`: a Swarm rollout to the
/// image of REV (default: the revision before the one that runs), recorded
/// as a rollback revision.
pub fn rollback(global: &Global, settings: &Settings, args: &RollbackArgs) -> CliResult {
    let options = rollout_options(settings, &args.tuning)?;
    let project = super::compose::load_project(global)?;
    let service = args.service.clone();
    let target = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let store = HistoryStore::open(&settings.history(), &project.name).await;
            let history = SwarmRevisions::open(&store, &project, &service).await?;
            let active = history.active().cloned().ok_or_else(|| {
                format!(
                    "{service}: no revision recorded for the swarm service, so there is \
                     nothing to go back to (`muster history {service}`)"
                )
            })?;
            let number = args.to.or(active.previous).ok_or_else(|| {
                format!(
                    "{service}: revision {} is the first one recorded; there is no earlier \
                     revision to go back to",
                    active.number
                )
            })?;
            let target = history
                .revisions
                .iter()
                .find(|r| r.number == number)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "{service}: no revision {number} (`muster history {service}` lists them)"
                    )
                })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(target)
        })?;
    let report = roll(
        global,
        settings,
        &project,
        &service,
        &target.image,
        &options,
        Some(target.number),
    )?;
    let summary = format!(
        "{}: rolled back to revision {} ({} -> {})",
        report.service, target.number, report.from_image, report.to_image
    );
    finish(global.json, &report, summary)
}
