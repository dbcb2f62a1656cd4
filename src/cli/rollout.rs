//! `muster rollout`, `muster rollout status`, `muster rollback`, `muster history`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use muster::config::Settings;
use muster::engine::Engine;
use muster::history::HistoryStore;
use muster::rollout::options::{FailureAction, Order, PreStop, RolloutFlags};
use muster::rollout::progress::{Event, Progress};
use muster::rollout::revisions::{Kind, Outcome, Revision, Who};
use muster::rollout::{RolloutRequest, Rollouts, ServiceResult, StatusMode, StatusReport};

use super::{CliResult, Global};

#[derive(Args, Debug, Default)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub action: Option<RolloutAction>,
    /// Services to roll out, in dependency order (a service named `status`: `muster rollout -- status`).
    pub services: Vec<String>,
    /// New image: REF for one service, or SERVICE=REF (repeatable). Without it,
    /// what the compose file says now is rolled out.
    #[arg(long = "image", value_name = "REF")]
    pub image: Vec<String>,
    /// Environment override K=V for every named service (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    #[command(flatten)]
    pub tuning: TuningArgs,
    /// Roll one service out on the Docker Swarm whose manager DOCKER_HOST
    /// names: Swarm's rolling update, gated on muster's probes of the new
    /// tasks, and Swarm's rollback when they are not ready by --progress-deadline.
    #[arg(long, conflicts_with = "env")]
    pub swarm: bool,
}

#[derive(Subcommand, Debug)]
pub enum RolloutAction {
    /// Follow a rollout in progress; finish (or with --revert, undo) one whose muster died.
    Status(RolloutStatusArgs),
}

#[derive(Args, Debug)]
pub struct RolloutStatusArgs {
    pub service: String,
    /// Resume a paused rollout.
    #[arg(long, conflicts_with = "revert")]
    pub resume: bool,
    /// Return an unfinished rollout to the revision that ran before it.
    #[arg(long)]
    pub revert: bool,
}

/// The options `rollout` and `rollback` share (Swarm / Kubernetes names).
#[derive(Args, Debug, Default, Clone)]
pub struct TuningArgs {
    /// Containers replaced at once (0 = all) [default: deploy.update_config.parallelism, else 1].
    #[arg(long, value_name = "N")]
    pub parallelism: Option<u32>,
    /// start-first | stop-first [default: update_config.order, else start-first].
    #[arg(long, value_name = "ORDER")]
    pub order: Option<String>,
    /// How long each new container must stay ready after it joined [default: update_config.monitor, else max(5s, what its check needs)].
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub monitor: Option<String>,
    /// stop-first: containers down at once [default: parallelism].
    #[arg(long, value_name = "N")]
    pub max_unavailable: Option<u32>,
    /// rollback | pause | continue [default: update_config.failure_action, else rollback].
    #[arg(long, value_name = "ACTION")]
    pub failure_action: Option<String>,
    /// Failed containers tolerated, as a fraction of the replicas [default: 0].
    #[arg(long, value_name = "F")]
    pub max_failure_ratio: Option<f64>,
    /// How long one new container may take to become ready [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub progress_deadline: Option<String>,
    /// Pause between batches [default: update_config.delay, else 0s].
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub delay: Option<String>,
    /// How long an old container keeps serving after it left the service name [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub drain: Option<String>,
    /// Before an old container leaves: an HTTP call, "[METHOD ]URL" ({container}, {id}, {ip}, {service}, {number} are filled in).
    #[arg(long, value_name = "[METHOD ]URL", conflicts_with = "pre_stop_exec")]
    pub pre_stop_http: Option<String>,
    /// Before an old container leaves: `sh -c CMD` inside it.
    #[arg(long, value_name = "CMD")]
    pub pre_stop_exec: Option<String>,
    /// Revisions kept per service [default: 10].
    #[arg(long, value_name = "N")]
    pub history_limit: Option<u32>,
    /// On failure go back to the last revision that was healthy, not merely the previous one.
    #[arg(long)]
    pub auto_revert: bool,
    /// Warn instead of refusing a monitor window shorter than the check needs; roll out even when nothing changed.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Default)]
pub struct RollbackArgs {
    pub service: String,
    /// Revision number to return to (default: the one before the running revision).
    #[arg(long, value_name = "REV")]
    pub to: Option<u64>,
    #[command(flatten)]
    pub tuning: TuningArgs,
    /// Roll a Docker Swarm service back (DOCKER_HOST names the manager): a
    /// Swarm rollout to the image of REV, gated on muster's probes.
    #[arg(long)]
    pub swarm: bool,
}

#[derive(Args, Debug, Default)]
pub struct HistoryArgs {
    pub service: String,
}

fn duration(flag: &str, text: &Option<String>) -> Result<Option<std::time::Duration>, String> {
    text.as_deref()
        .map(|t| muster::duration::parse(t).map_err(|e| format!("--{flag} {t:?}: {e}")))
        .transpose()
}

impl TuningArgs {
    fn flags(&self) -> Result<RolloutFlags, String> {
        let pre_stop = match (&self.pre_stop_http, &self.pre_stop_exec) {
            (Some(h), _) => Some(PreStop::http(h).map_err(|e| format!("--pre-stop-http: {e}"))?),
            (None, Some(c)) if c.trim().is_empty() => {
                return Err("--pre-stop-exec: the command is empty".into())
            }
            (None, Some(c)) => Some(PreStop::Exec { command: c.clone() }),
            (None, None) => None,
        };
        Ok(RolloutFlags {
            parallelism: self.parallelism,
            order: self
                .order
                .as_deref()
                .map(|o| o.parse::<Order>().map_err(|e| format!("--order: {e}")))
                .transpose()?,
            monitor: duration("monitor", &self.monitor)?,
            max_unavailable: self.max_unavailable,
            failure_action: self
                .failure_action
                .as_deref()
                .map(|a| {
                    a.parse::<FailureAction>()
                        .map_err(|e| format!("--failure-action: {e}"))
                })
                .transpose()?,
            max_failure_ratio: self.max_failure_ratio,
            progress_deadline: duration("progress-deadline", &self.progress_deadline)?,
            history_limit: self.history_limit,
            delay: duration("delay", &self.delay)?,
            drain: duration("drain", &self.drain)?,
            pre_stop,
            auto_revert: self.auto_revert,
            force: self.force,
        })
    }
}

/// Prints events: a line per step, or one JSON object per line.
struct Printer {
    json: bool,
    width: usize,
}

impl Progress for Printer {
    fn emit(&self, event: &Event) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
        } else {
            println!(
                "{:<width$}  {}",
                event.service,
                event.kind.human(),
                width = self.width
            );
        }
    }
}

/// Ctrl-C (or SIGTERM) once: stop at the next safe point. Twice: quit at once.
fn cancel_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        muster::health::shutdown_signal().await;
        eprintln!("muster: stopping at the next safe point (new containers that are not ready are removed); press Ctrl-C again to quit at once");
        let _ = tx.send(true);
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    rx
}

async fn open(
    global: &Global,
    settings: &Settings,
    width_of: &[&str],
) -> Result<Rollouts, Box<dyn std::error::Error + Send + Sync>> {
    let project = super::compose::load_project(global)?;
    let engine = Engine::connect().await?;
    let store = HistoryStore::open(&settings.history(), &project.name).await;
    tracing::info!(store = %store.describe(), "revisions");
    let width = width_of.iter().map(|s| s.len()).max().unwrap_or(8).max(8);
    Ok(Rollouts {
        engine,
        project,
        settings: settings.readiness(),
        store,
        who: Who::current(),
        progress: Arc::new(Printer {
            json: global.json,
            width,
        }),
        cancel: cancel_on_signal(),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn print_results(json: bool, results: &[ServiceResult]) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({ "result": results }));
    } else {
        println!();
        println!(
            "{:<16} {:<8} {:<12} {:<9} {:<7} DETAIL",
            "SERVICE", "REVISION", "OUTCOME", "REPLACED", "FAILED"
        );
        for r in results {
            println!(
                "{:<16} {:<8} {:<12} {:<9} {:<7} {}",
                r.service,
                r.revision
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.outcome.map(|o| o.as_str()).unwrap_or("unchanged"),
                format!("{}/{}", r.replaced, r.replicas),
                r.failures,
                r.message
            );
        }
    }
    if results.iter().all(ServiceResult::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub fn rollout(global: &Global, settings: &Settings, args: &RolloutArgs) -> CliResult {
    if let Some(RolloutAction::Status(status_args)) = &args.action {
        return status(global, settings, status_args);
    }
    if args.services.is_empty() {
        return Err(
            "muster rollout: name the services to roll out (or `muster rollout status SERVICE`)"
                .into(),
        );
    }
    let flags = args.tuning.flags()?;
    let mut images = BTreeMap::new();
    for value in &args.image {
        match value.split_once('=') {
            Some((service, image)) if !service.is_empty() && !image.is_empty() => {
                images.insert(service.to_string(), image.to_string());
            }
            Some(_) => return Err(format!("--image {value:?}: expected REF or SERVICE=REF").into()),
            None if args.services.len() == 1 && args.image.len() == 1 => {
                images.insert(args.services[0].clone(), value.clone());
            }
            None => {
                return Err(format!(
                "--image {value:?}: with several services (or several --image), write SERVICE=REF"
            )
                .into())
            }
        }
    }
    let mut env = BTreeMap::new();
    for kv in &args.env {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                env.insert(k.to_string(), v.to_string());
            }
            _ => return Err(format!("--env {kv:?}: expected KEY=VALUE").into()),
        }
    }
    let request = RolloutRequest {
        services: args.services.clone(),
        images,
        env,
        flags,
    };
    let names: Vec<&str> = args.services.iter().map(String::as_str).collect();
    runtime()?.block_on(async move {
        let rollouts = open(global, settings, &names).await?;
        let results = rollouts.rollout(&request).await?;
        Ok(print_results(global.json, &results))
    })
}

pub fn rollback(global: &Global, settings: &Settings, args: &RollbackArgs) -> CliResult {
    let flags = args.tuning.flags()?;
    runtime()?.block_on(async move {
        let rollouts = open(global, settings, &[args.service.as_str()]).await?;
        let result = rollouts.rollback(&args.service, args.to, &flags).await?;
        Ok(print_results(global.json, &[result]))
    })
}

fn status(global: &Global, settings: &Settings, args: &RolloutStatusArgs) -> CliResult {
    let mode = if args.revert {
        StatusMode::Revert
    } else if args.resume {
        StatusMode::Resume
    } else {
        StatusMode::Default
    };
    runtime()?.block_on(async move {
        let rollouts = open(global, settings, &[args.service.as_str()]).await?;
        let report = rollouts.status(&args.service, mode).await?;
        let supervisor = supervisor_of(global, settings);
        if global.json {
            let mut value = serde_json::to_value(&report)?;
            if let Some(map) = value.as_object_mut() {
                map.insert("supervisor".into(), supervisor.0);
            }
            println!("{value}");
        } else {
            print_status(&report);
            println!("{}", supervisor.1);
        }
        // Exit 0 when nothing is left unfinished and what was done went
        // through (a revert that was asked for and worked counts).
        let ok = report.unfinished.is_none()
            && report
                .result
                .as_ref()
                .is_none_or(|r| r.ok() || (args.revert && r.outcome == Some(Outcome::RolledBack)));
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// The muster that supervises this project, checked by its identity: JSON
/// (`{"listen", "pid"}` or null) and one line for people.
fn supervisor_of(global: &Global, settings: &Settings) -> (serde_json::Value, String) {
    let wanted = super::endpoint::wanted(global, settings);
    let timeout = std::time::Duration::from_secs(1);
    let lookup = match super::endpoint::find(settings, &wanted, "/healthz", timeout) {
        Ok(lookup) => lookup,
        Err(e) => {
            return (
                serde_json::Value::Null,
                format!("supervisor: unknown ({e})"),
            )
        }
    };
    match &lookup.found {
        Some((addr, reply)) => {
            let pid = reply.identity().map(|id| id.pid).unwrap_or(0);
            (
                serde_json::json!({ "listen": addr, "pid": pid }),
                format!(
                    "supervisor: the muster at {addr} (pid {pid}) supervises {}",
                    wanted.describe()
                ),
            )
        }
        None => (
            serde_json::Value::Null,
            format!("supervisor: none; {}", lookup.why_not(&wanted)),
        ),
    }
}

fn print_status(report: &StatusReport) {
    println!();
    println!(
        "{}: revision {} runs; {}",
        report.service,
        report
            .active
            .map(|n| n.to_string())
            .unwrap_or_else(|| "(none recorded)".into()),
        report.action
    );
    if let Some(r) = &report.result {
        println!(
            "{}: revision {} {} ({}/{} replaced, {} failed){}",
            r.service,
            r.revision.unwrap_or(0),
            r.outcome.map(|o| o.as_str()).unwrap_or("-"),
            r.replaced,
            r.replicas,
            r.failures,
            if r.message.is_empty() {
                String::new()
            } else {
                format!(": {}", r.message)
            }
        );
    }
    if let Some(rec) = &report.unfinished {
        println!(
            "unfinished: revision {} from {} ({:?}, {}/{} replaced) by {}",
            rec.revision, rec.from, rec.phase, rec.replaced, rec.replicas, rec.owner
        );
    }
    let width = report
        .containers
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<8} {:<10} {:<10} {:<8} IMAGE",
        "NAME", "REVISION", "STATE", "HEALTH", "SERVING"
    );
    for c in &report.containers {
        println!(
            "{:<width$}  {:<8} {:<10} {:<10} {:<8} {}",
            c.name,
            c.revision
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            c.state,
            c.health.as_deref().unwrap_or("-"),
            if c.serving { "yes" } else { "no" },
            c.image
        );
    }
}

pub fn history(global: &Global, settings: &Settings, args: &HistoryArgs) -> CliResult {
    runtime()?.block_on(async move {
        let rollouts = open(global, settings, &[args.service.as_str()]).await?;
        let (revisions, active) = rollouts.history(&args.service).await?;
        // A Swarm service has no containers on this host: its revision is
        // the one whose image the service runs.
        let on_swarm = match active {
            Some(_) => None,
            None => {
                super::swarm_history::swarm_active(
                    &rollouts.engine,
                    &rollouts.project.name,
                    &args.service,
                    &revisions,
                )
                .await
            }
        };
        let active = active.or(on_swarm);
        if global.json {
            println!(
                "{}",
                serde_json::json!({
                    "service": args.service,
                    "active": active,
                    "store": rollouts.store.describe(),
                    "revisions": revisions,
                })
            );
            return Ok(ExitCode::SUCCESS);
        }
        if revisions.is_empty() {
            println!(
                "{}: no revisions recorded yet (the first `muster rollout {}` records the running containers as revision 1)",
                args.service, args.service
            );
            return Ok(ExitCode::SUCCESS);
        }
        let image_width = revisions.iter().map(|r| r.image.len()).max().unwrap_or(5).max(5);
        println!(
            "  {:<4} {:<19}  {:<11} {:<7} {:<image_width$}  {:<12} {:<8} {:<20} CHANGE",
            "REV", "STARTED (UTC)", "OUTCOME", "HEALTHY", "IMAGE", "IMAGE ID", "REPLACED", "WHO"
        );
        for r in &revisions {
            println!(
                "{} {:<4} {:<19}  {:<11} {:<7} {:<image_width$}  {:<12} {:<8} {:<20} {}",
                if Some(r.number) == active { "*" } else { " " },
                r.number,
                utc(r.started_ms),
                r.outcome.as_str(),
                if r.healthy { "yes" } else { "no" },
                r.image,
                short_id(&r.image_id),
                format!("{}/{}", r.replaced, r.replicas),
                r.who,
                change(r),
            );
        }
        let what = match on_swarm {
            Some(_) => "the revision whose image the Swarm service runs",
            None => "the revision the running containers carry",
        };
        println!("\n* = {what}; revisions in {}", rollouts.store.describe());
        Ok(ExitCode::SUCCESS)
    })
}

/// Before `muster up` reconciles containers: finish a rollout whose muster
/// died, refuse one that runs or is paused, and keep the revisions rollouts
/// made (see [`Rollouts::prepare_up`]). Nothing is read from the revision
/// store unless a container of the project carries a revision label.
pub async fn prepare_up(
    global: &Global,
    settings: &Settings,
    engine: &Engine,
    services: &[String],
    project: &mut muster::compose::Project,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let labelled = engine
        .list_project_containers(&project.name, None)
        .await?
        .iter()
        .any(|c| {
            c.labels
                .contains_key(muster::rollout::revisions::REVISION_LABEL)
        });
    if !labelled {
        return Ok(());
    }
    let width = project.services.keys().map(String::len).max().unwrap_or(8);
    let rollouts = Rollouts {
        engine: engine.clone(),
        project: project.clone(),
        settings: settings.readiness(),
        store: HistoryStore::open(&settings.history(), &project.name).await,
        who: Who::current(),
        progress: Arc::new(Printer {
            json: global.json,
            width,
        }),
        cancel: cancel_on_signal(),
    };
    let prep = rollouts.prepare_up(services, project).await?;
    for note in &prep.notes {
        eprintln!("muster: {note}");
    }
    Ok(())
}

fn change(r: &Revision) -> String {
    let mut out = match &r.kind {
        Kind::Baseline => "baseline (running before the first rollout)".to_string(),
        Kind::Rollback { to } => format!("rollback to {to}"),
        Kind::Rollout if r.overrides.is_empty() => "compose file".to_string(),
        Kind::Rollout => r.overrides.describe(),
    };
    if !r.message.is_empty() && r.kind != Kind::Baseline {
        out.push_str(&format!(" — {}", r.message));
    }
    out
}

fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of unix milliseconds.
fn utc(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_868_800_000), "2000-03-01 00:00:00");
        assert_eq!(utc(1_795_433_803_280), "2026-11-23 11:36:43");
    }
}
