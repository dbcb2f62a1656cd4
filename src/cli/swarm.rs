//! `muster up --swarm`: prints the deploy's progress (one line per network,
//! creation, task change and ready service) or, with `--json`, one JSON
//! report at the end, with each service's tasks (node, task id, state,
//! reason, probe result).

use std::process::ExitCode;

use muster::engine::Engine;
use muster::swarm::{self, Progress, SwarmOptions};

use super::{CliResult, Global, UpArgs};

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

/// `muster up --swarm [SERVICES]`.
pub fn up(global: &Global, args: &UpArgs) -> CliResult {
    let wait_timeout = match &args.wait_timeout {
        Some(text) => Some(
            muster::duration::parse(text).map_err(|e| format!("--wait-timeout {text:?}: {e}"))?,
        ),
        None => None,
    };
    let project = super::compose::load_project(global)?;
    let project = muster::supervisor::start::selected_project(&project, &args.services, false)?;
    let json = global.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let engine = Engine::connect().await?;
        let options = SwarmOptions { wait_timeout };
        let progress = move |p: Progress| {
            if json {
                // Warnings still reach a human reading stderr.
                if let Progress::Ignored(_) | Progress::NodeDown(_) = &p {
                    eprintln!("muster: {}", line(&p));
                }
                return;
            }
            match &p {
                Progress::Ignored(_) | Progress::NodeDown(_) => eprintln!("muster: {}", line(&p)),
                _ => println!("{}", line(&p)),
            }
        };
        swarm::deploy(&engine, &project, &options, &progress)
            .await
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "stack {}: {} services ready on {} nodes in {:.1}s (manager {})",
            report.stack,
            report.services.len(),
            report.manager.node_count,
            report.elapsed_ms as f64 / 1000.0,
            report.manager.node
        );
    }
    Ok(ExitCode::SUCCESS)
}
