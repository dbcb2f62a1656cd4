//! `muster tune [SERVICES…] [--write FILE]`: the healthcheck values muster
//! would use per service and why, as a table or `--json`, and optionally as a
//! compose override file.

use std::process::ExitCode;

use muster::config::Settings;
use muster::engine::Engine;
use muster::grace::tune::{override_file, tune_service, TunedService};
use muster::history::HistoryStore;

use super::{CliResult, Global, TuneArgs};

pub fn run(global: &Global, settings: &Settings, args: &TuneArgs) -> CliResult {
    let project = super::compose::load_project(global)?;
    for name in &args.services {
        project.service(name)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let engine = match Engine::connect().await {
            Ok(engine) => Some(engine),
            Err(e) => {
                tracing::warn!(error = %e, "tune: no Docker engine; image sizes are unknown and declared values are used");
                None
            }
        };
        let history = HistoryStore::open(&settings.history(), &project.name).await;
        let decisions = muster::grace::decide_services(
            &project,
            &settings.grace_options(),
            engine.as_ref(),
            Some(&history),
            &args.services,
            muster::grace::ImageSource::EngineOrRegistry,
        )
        .await;
        let tuned: Vec<TunedService> = decisions
            .into_iter()
            .map(|(name, d)| tune_service(&project.services[&name], d))
            .collect();
        if let Some(path) = &args.write {
            let text = override_file(&project, &tuned);
            std::fs::write(path, text)
                .map_err(|e| format!("--write {}: cannot write: {e}", path.display()))?;
        }
        if global.json {
            let out = serde_json::json!({
                "project": project.name,
                "history": history.describe(),
                "written": args.write.as_ref().map(|p| p.display().to_string()),
                "services": tuned,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print_table(&tuned);
            println!();
            println!("history: {}", history.describe());
            if let Some(path) = &args.write {
                println!(
                    "wrote {} ({} services): use it as docker compose -f <your files> -f {}",
                    path.display(),
                    tuned.len(),
                    path.display()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_table(tuned: &[TunedService]) {
    let fmt = muster::duration::format;
    let width = tuned
        .iter()
        .map(|t| t.service.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "{:<width$}  {:<12} {:<10} {:<5} {:<8} {:<14} {:<7} RETRIES",
        "SERVICE", "START_PERIOD", "FROM", "NEXT", "INTERVAL", "START_INTERVAL", "TIMEOUT"
    );
    for t in tuned {
        let h = &t.healthcheck;
        println!(
            "{:<width$}  {:<12} {:<10} {:<5} {:<8} {:<14} {:<7} {}",
            t.service,
            fmt(h.start_period),
            t.grace.source.as_str(),
            t.grace.next_start.map(|k| k.as_str()).unwrap_or("-"),
            fmt(h.interval),
            fmt(h.start_interval),
            fmt(h.timeout),
            h.retries,
        );
    }
    for t in tuned {
        println!();
        println!(
            "{}: start_period {} ({})",
            t.service,
            fmt(t.healthcheck.start_period),
            t.grace.source.as_str()
        );
        for reason in &t.grace.reasons {
            println!("  - {reason}");
        }
        println!("  - interval, timeout, retries: {}", t.why.interval);
        if !t.has_test {
            println!(
                "  - no healthcheck test (compose or image): Docker would ignore these timings"
            );
        }
    }
}
