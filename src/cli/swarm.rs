//! `muster up --swarm`: prints the deploy's progress (one line per network,
//! creation, task change and ready service) or, with `--json`, one JSON
//! report at the end, with each service's tasks (node, task id, state,
//! reason, probe result).

use std::process::ExitCode;

use muster::config::Settings;
use muster::engine::Engine;
use muster::health;
use muster::supervisor::StateStore;
use muster::swarm::rollout::RolloutOptions;
use muster::swarm::{self, Progress, SwarmOptions};

use super::{CliResult, Global, RolloutArgs, UpArgs};

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// One progress line for a terminal.
fn line(p: &Progress) -> String {
    match p {
        Progress::Ignored(i) => format!("warning: {i}"),
        Progress::NodeDown(d) => format!("warning: {d}"),
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
        } => match created {
            true => format!("{service}: created service {name} (level {level})"),
            false => format!("{service}: service {name} exists, not changed (level {level})"),
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let engine = Engine::connect().await?;
        Ok(work(engine).await?)
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
    let options = SwarmOptions { wait_timeout };
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
        let engine = Engine::connect().await?;
        let report = swarm::deploy(&engine, project, options, &printer(json)).await?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!("{}", deployed(&report));
        }
        let store = StateStore::new(&project.name);
        let server = super::stack::start_health_server(endpoint, &store);
        muster::supervisor::swarm::supervise(
            &engine,
            project,
            &report,
            &store,
            health::shutdown_signal(),
        )
        .await;
        server.abort();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A progress printer: lines on stdout (warnings on stderr), or with `--json`
/// only the warnings, on stderr.
fn printer(json: bool) -> impl Fn(Progress) + Send + Sync {
    move |p: Progress| {
        let warning = matches!(p, Progress::Ignored(_) | Progress::NodeDown(_));
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

/// `muster rollout SERVICE --image REF --swarm`.
pub fn rollout(global: &Global, args: &RolloutArgs) -> CliResult {
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
    let options = RolloutOptions {
        parallelism: args.tuning.parallelism,
        order: args.tuning.order.clone(),
        delay: duration("--delay", &args.tuning.delay)?,
        deadline: duration("--progress-deadline", &args.tuning.progress_deadline)?,
    };
    let project = super::compose::load_project(global)?;
    let json = global.json;
    let report = block(|engine| async move {
        swarm::rollout::rollout(
            &engine,
            &project,
            &service,
            &image,
            &options,
            &printer(json),
        )
        .await
    })?;
    let summary = format!(
        "{}: rolled out {} -> {} on {} tasks in {:.1}s",
        report.service,
        report.from_image,
        report.to_image,
        report.tasks.iter().filter(|t| t.ready).count(),
        report.elapsed_ms as f64 / 1000.0
    );
    finish(json, &report, summary)
}
