//! `muster build [SERVICES…]`: builds the images of the services that have
//! `build:`, as `docker compose build` does, through the engine's build API.
//!
//! Why a command of its own: a team fixing a Dockerfile wants to build
//! without starting anything, and CI wants the images built (and the failed
//! step's log) before `up`. The work is the library's
//! (`engine::build::build_services`); this file prints it: the engine's output
//! per service as `SERVICE | line` on stderr (`--progress plain`) or nothing
//! (`--progress quiet`), then a table (or `--json`) on stdout.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use muster::engine::build::{build_services, BuildFlags, BuiltImage, LineSink};
use muster::engine::Engine;

use super::{CliResult, Global};

/// How build output is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// Every line of the engine's output, prefixed with the service.
    #[default]
    Plain,
    /// Nothing but the result (a failed step's output is still in the error).
    Quiet,
}

#[derive(Args, Debug, Default)]
pub struct BuildArgs {
    /// Services to build (default: every service with `build:`).
    pub services: Vec<String>,
    /// Do not use the engine's build cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Always pull the base images (FROM), even when present.
    #[arg(long)]
    pub pull: bool,
    /// How to show the build output.
    #[arg(long, value_enum, default_value_t = Progress::Plain)]
    pub progress: Progress,
}

/// Prints each line as `SERVICE | line` on stderr, or nothing when quiet.
pub fn progress_sink(progress: Progress, width: usize) -> LineSink {
    match progress {
        Progress::Quiet => Arc::new(|_: &str, _: &str| {}),
        Progress::Plain => Arc::new(move |service: &str, line: &str| {
            eprintln!("{service:<width$} | {line}");
        }),
    }
}

pub fn run(global: &Global, args: &BuildArgs) -> CliResult {
    let project = super::compose::load_project(global)?;
    for name in &args.services {
        project.service(name)?;
    }
    let names: Vec<String> = if args.services.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        args.services.clone()
    };
    let without_build: Vec<&String> = names
        .iter()
        .filter(|n| project.services[*n].build.is_none())
        .collect();
    if !args.services.is_empty() {
        for name in &without_build {
            eprintln!("muster: {name} has no build: section; nothing to build");
        }
    }
    let width = names.iter().map(String::len).max().unwrap_or(0).max(7);
    let flags = BuildFlags {
        no_cache: args.no_cache,
        pull: args.pull,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(async {
        let engine = Engine::connect().await?;
        let sink = progress_sink(args.progress, width);
        Ok::<_, muster::engine::EngineError>(
            build_services(&engine, &project, &args.services, flags, sink).await,
        )
    })?;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if global.json {
        let built: Vec<&BuiltImage> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let errors: Vec<serde_json::Value> = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| {
                serde_json::json!({
                    "service": e.service(),
                    "error": muster::error_text::error_chain(e),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "project": project.name, "built": built, "failed": errors })
        );
    } else {
        if results.is_empty() {
            println!("{}: no service has a build: section", project.name);
        }
        let ok: Vec<&BuiltImage> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        if !ok.is_empty() {
            println!(
                "{:<width$}  {:<32} {:<19} {:>10} {:>7}",
                "SERVICE", "IMAGE", "ID", "CONTEXT", "TIME"
            );
            for b in ok {
                println!(
                    "{:<width$}  {:<32} {:<19} {:>10} {:>6.1}s",
                    b.service,
                    b.image,
                    short_id(&b.id),
                    human_bytes(b.context_bytes),
                    b.elapsed.as_secs_f64()
                );
            }
        }
    }
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        eprintln!("muster: error: {}", muster::error_text::error_chain(e));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `sha256:0123456789abcdef…` -> `sha256:0123456789ab`.
pub fn short_id(id: &str) -> String {
    match id.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => id.chars().take(12).collect(),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
