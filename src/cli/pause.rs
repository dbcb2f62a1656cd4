//! `muster pause SERVICE` and `muster resume SERVICE`: maintenance of one
//! service (no healing, no alerts), stored with the project's history so the
//! running muster, and the next one, see it.

use std::process::ExitCode;

use muster::config::Settings;
use muster::history::lock::Who;
use muster::history::HistoryStore;
use muster::supervisor::pause;
use muster::supervisor::PauseNote;

use super::{CliResult, Global, PauseArgs, ResumeArgs};

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

pub fn pause(global: &Global, settings: &Settings, args: &PauseArgs) -> CliResult {
    let project = super::compose::load_project(global)?;
    let known: Vec<String> = project.services.keys().cloned().collect();
    runtime()?.block_on(async {
        let store = HistoryStore::open(&settings.history(), &project.name).await;
        let note = PauseNote {
            since_ms: muster::clock::now_ms(),
            by: Who::current().user_at_host(),
            reason: args.reason.clone(),
        };
        let note = pause::pause(&store, &project.name, &known, &args.service, note).await?;
        if global.json {
            println!(
                "{}",
                serde_json::json!({ "project": project.name, "service": args.service, "paused": note })
            );
        } else {
            println!(
                "{}/{}: paused by {}{}: muster neither restarts it nor sends alerts for it until `muster resume {}`",
                project.name,
                args.service,
                note.by,
                note.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
                args.service
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn resume(global: &Global, settings: &Settings, args: &ResumeArgs) -> CliResult {
    let project = super::compose::load_project(global)?;
    let known: Vec<String> = project.services.keys().cloned().collect();
    runtime()?.block_on(async {
        let store = HistoryStore::open(&settings.history(), &project.name).await;
        let was = pause::resume(&store, &project.name, &known, &args.service).await?;
        if global.json {
            println!(
                "{}",
                serde_json::json!({ "project": project.name, "service": args.service, "resumed": was.is_some(), "was": was })
            );
        } else if let Some(note) = was {
            println!(
                "{}/{}: resumed (paused by {} {}); muster supervises it again",
                project.name,
                args.service,
                note.by,
                super::status::fmt_age(muster::clock::now_ms().saturating_sub(note.since_ms))
            );
        } else {
            println!("{}/{}: was not paused", project.name, args.service);
        }
        Ok(ExitCode::SUCCESS)
    })
}
