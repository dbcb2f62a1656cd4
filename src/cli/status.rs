//! `muster status`: each service's readiness. Asks a running muster first
//! (`GET http://<listen>/status`); when none answers, runs every configured
//! probe once and shows that: the compose project's `x-muster` probes, else
//! config/muster.yaml's. Exit 0 only when all required services are ready.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use muster::compose::xmuster::MusterService;
use muster::compose::ComposeError;
use muster::config::Settings;
use muster::probe::{AddressMode, LabelResolver, ProbeContext, ProbeStatus};
use muster::supervisor::once::ProbeBuildError;
use muster::supervisor::plan::{probe_error, ProbeAt};
use muster::supervisor::{ServiceState, ServiceStatus, StackSnapshot};

use super::{CliResult, Global, StatusArgs};

/// Where the snapshot came from, for the footer.
pub(super) enum Source {
    Live(String),
    Probed(AddressMode),
}

/// The services `muster status` probes, and where their settings came from.
struct Plan {
    project: String,
    services: BTreeMap<String, MusterService>,
    /// Compose services: image and dependencies, for the snapshot.
    compose: BTreeMap<String, (Option<String>, Vec<String>)>,
    /// Services whose probes come from the compose file's `x-muster`.
    from_compose: BTreeSet<String>,
    compose_files: Vec<PathBuf>,
}

/// The compose project's services with their `x-muster` probes (which win
/// over config/muster.yaml's entry of the same service). With no compose file
/// at all, config/muster.yaml's services alone, as before.
fn plan(global: &Global, settings: &Settings) -> Result<Plan, String> {
    let project = match super::compose::load_project(global) {
        Ok(project) => project,
        Err(ComposeError::NoComposeFile { .. }) if !settings.services.is_empty() => {
            return Ok(Plan {
                project: project_name(global),
                services: settings.services.clone(),
                compose: BTreeMap::new(),
                from_compose: BTreeSet::new(),
                compose_files: Vec::new(),
            })
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut services = BTreeMap::new();
    let mut compose = BTreeMap::new();
    let mut from_compose = BTreeSet::new();
    for (name, service) in &project.services {
        // The same choice as the supervisor's (compose `x-muster` probes win);
        // a service left without probes is shown as not probed.
        // A compose `x-muster` without probes still says whether the
        // service is required.
        let chosen = service
            .muster_settings(&settings.services)
            .or(service.muster.as_ref());
        if service.compose_probes().is_some() {
            from_compose.insert(name.clone());
        }
        services.insert(name.clone(), chosen.cloned().unwrap_or_default());
        compose.insert(
            name.clone(),
            (
                service.image.clone(),
                service.depends_on.keys().cloned().collect(),
            ),
        );
    }
    Ok(Plan {
        project: project.name.clone(),
        services,
        compose,
        from_compose,
        compose_files: project.config_files.clone(),
    })
}

/// A probe that cannot be built, named by its file, line and field (the
/// compose file for `x-muster` probes, config/muster.yaml for the others).
fn locate_error(plan: &Plan, settings: &Settings, error: ProbeBuildError) -> String {
    let at = ProbeAt {
        service: &error.service,
        index: error.index,
        kind: error.kind,
        field: error.field,
        from_compose: plan.from_compose.contains(&error.service),
    };
    probe_error(
        &plan.compose_files,
        settings.config_path.as_deref(),
        at,
        error.message,
    )
    .to_string()
}

/// Services without a probe are judged by their containers, as `up` judges
/// them (Compose's `service_started`): `ready` while one runs, `stopped`
/// (required, so the exit code says the stack is down) when none does. Only
/// when the engine cannot be asked are they `pending` and left out of the
/// exit code.
fn mark_unprobed(
    plan: &Plan,
    snapshot: &mut StackSnapshot,
    running: &Result<BTreeMap<String, usize>, String>,
) {
    for (name, status) in snapshot.services.iter_mut() {
        let unprobed = plan.services.get(name).filter(|m| m.probes.is_empty());
        if let Some(muster) = unprobed {
            status.required = muster.required;
            match running {
                Ok(running) => match running.get(name).copied().unwrap_or(0) {
                    0 => {
                        status.state = ServiceState::Stopped;
                        status.reason = "no running container (no muster probe)".to_string();
                    }
                    n => {
                        status.state = ServiceState::Ready;
                        status.reason = format!("{n} container(s) running (no muster probe)");
                    }
                },
                Err(why) => {
                    status.state = ServiceState::Pending;
                    status.reason = format!("no muster probe, and the engine cannot tell: {why}");
                    status.required = false;
                }
            }
        }
        if let Some((image, depends_on)) = plan.compose.get(name) {
            status.image = image.clone();
            status.depends_on = depends_on.clone();
        }
    }
}

pub fn run(global: &Global, settings: &Settings, args: &StatusArgs) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (snapshot, source, note) = snapshot(global, settings, args.direct, &runtime)?;
    if let Some(note) = note {
        eprintln!("muster status: {note}");
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
    } else {
        print!("{}", render(&snapshot, &source));
    }
    if snapshot.services.is_empty() {
        if !global.json {
            eprintln!("muster status: no services to check (no x-muster probes configured)");
        }
        return Ok(ExitCode::from(1));
    }
    // "0/0 required services ready" is not a ready stack.
    let required = snapshot.services.values().filter(|s| s.required).count();
    Ok(if required > 0 && snapshot.all_required_ready() {
        ExitCode::SUCCESS
    } else {
        if required == 0 && !global.json {
            eprintln!("muster status: no service could be checked (no probes, and the engine cannot tell which containers run)");
        }
        ExitCode::from(1)
    })
}

/// The stack's state: from this project's running muster (unless `direct`),
/// else by probing once. The note says why a muster that answered was not
/// believed (another stack's, an error status, a body it cannot read), for
/// the caller to show where it fits.
pub(super) fn snapshot(
    global: &Global,
    settings: &Settings,
    direct: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<(StackSnapshot, Source, Option<String>), Box<dyn std::error::Error + Send + Sync>> {
    snapshot_with_resources(global, settings, direct, runtime)
        .map(|(snapshot, _, source, note)| (snapshot, source, note))
}

/// What a live muster's resource telemetry says per service (`/status`'s
/// `resources`; empty when probing directly).
pub(super) type Resources = BTreeMap<String, muster::supervisor::telemetry::ServiceUsage>;

/// The stack, its resources, where they came from, and a note.
pub(super) type WithResources = (StackSnapshot, Resources, Source, Option<String>);

/// [`snapshot`], with the running muster's CPU and memory per service.
pub(super) fn snapshot_with_resources(
    global: &Global,
    settings: &Settings,
    direct: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<WithResources, Box<dyn std::error::Error + Send + Sync>> {
    let mode = settings.probe_address;
    // A running muster answers first, but only the one of this stack.
    let (live, note) = match direct {
        true => (None, None),
        false => ask_live(global, settings),
    };
    let (snapshot, resources, source) = match live {
        Some((view, source)) => (view.snapshot, view.resources, source),
        None => runtime.block_on(async {
            // The compose file is read only when probing here: a running
            // muster already knows its stack.
            let plan = plan(global, settings)?;
            let mut snap = probe_directly(&plan.project, &plan.services, mode)
                .await
                .map_err(|e| locate_error(&plan, settings, e))?;
            let running = running_containers(&plan.project).await;
            mark_unprobed(&plan, &mut snap, &running);
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((
                snap,
                Resources::new(),
                Source::Probed(mode.effective()),
            ))
        })?,
    };
    Ok((snapshot, resources, source, note))
}

/// Running containers per service of `project`, from the engine's labels.
async fn running_containers(project: &str) -> Result<BTreeMap<String, usize>, String> {
    let engine = muster::engine::Engine::connect()
        .await
        .map_err(|e| e.to_string())?;
    let containers = engine
        .list_project_containers(project, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut running = BTreeMap::new();
    for c in containers.iter().filter(|c| c.state == "running") {
        *running.entry(c.service.clone()).or_insert(0) += 1;
    }
    Ok(running)
}

/// `GET /status` of the muster of this stack, when one answers. A muster of
/// another stack on the address is named on stderr and not believed.
type Live = (Option<(muster::health::StatusView, Source)>, Option<String>);

fn ask_live(global: &Global, settings: &Settings) -> Live {
    let wanted = super::endpoint::wanted(global, settings);
    let lookup = match super::endpoint::find(settings, &wanted, "/status", LIVE_TIMEOUT) {
        Ok(lookup) => lookup,
        Err(e) => {
            tracing::debug!(error = %e, "no muster to ask; probing directly");
            return (None, None);
        }
    };
    let Some((addr, reply)) = lookup.found.as_ref() else {
        if lookup.other().is_some() {
            return (
                None,
                Some(format!("{}; probing directly", lookup.why_not(&wanted))),
            );
        }
        tracing::debug!(why = %lookup.why_not(&wanted), "no running muster; probing directly");
        return (None, None);
    };
    if reply.code != 200 {
        let note = format!(
            "the muster at {addr} answered /status with {}; probing directly",
            reply.code
        );
        return (None, Some(note));
    }
    match serde_json::from_slice::<muster::health::StatusView>(&reply.body) {
        Ok(view) => (Some((view, Source::Live(addr.clone()))), None),
        Err(e) => (None, Some(unreadable_note(addr, &e))),
    }
}

/// The note when this project's muster answered `/status` with a body that
/// is not a `StatusView`: the supervisor's own view (restarts, grace, agent
/// progress) is then missing, which the reader must not miss, and the likely
/// cause is two muster versions.
fn unreadable_note(addr: &str, error: &serde_json::Error) -> String {
    format!(
        "warning: the muster at {addr} answered /status with a body this muster cannot \
         read ({error}), so its view is NOT shown; every probe was run once here instead. \
         That muster is probably another version: run the same muster version for `serve` \
         and `status`, or pass --direct to stop asking it"
    )
}

/// How long one request to a running muster may take.
const LIVE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Runs every probe once, with Docker for exec/docker probes and published ports for `host` mode.
pub async fn probe_directly(
    project: &str,
    services: &BTreeMap<String, MusterService>,
    mode: AddressMode,
) -> Result<StackSnapshot, ProbeBuildError> {
    let needs_docker = mode.effective() == AddressMode::Host
        || services.values().flat_map(|s| &s.probes).any(|p| {
            matches!(
                p.kind,
                muster::compose::xmuster::ProbeKind::Exec(_)
                    | muster::compose::xmuster::ProbeKind::Docker(_)
            )
        });
    let mut ctx = ProbeContext {
        address_mode: mode,
        ..Default::default()
    };
    if needs_docker && !services.is_empty() {
        match connect_docker().await {
            Ok(docker) => {
                if mode.effective() == AddressMode::Host {
                    match muster::probe::published_ports_from_docker(&docker, project).await {
                        Ok(ports) => ctx.published = ports,
                        Err(e) => tracing::warn!(error = %e, "cannot list published ports"),
                    }
                }
                ctx.resolver = Some(Arc::new(LabelResolver {
                    docker: docker.clone(),
                    project: project.to_string(),
                }));
                ctx.docker = Some(docker);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Docker is not reachable: exec/docker probes cannot run, service names are used as written")
            }
        }
    }
    muster::supervisor::once::check_once(project, services, &ctx).await
}

async fn connect_docker() -> Result<bollard::Docker, bollard::errors::Error> {
    let docker = bollard::Docker::connect_with_local_defaults()?;
    tokio::time::timeout(Duration::from_secs(3), docker.negotiate_version())
        .await
        .map_err(|_| bollard::errors::Error::RequestTimeoutError)?
}

/// `-p`, `COMPOSE_PROJECT_NAME`, else the current directory's name, as Compose names projects.
fn project_name(global: &Global) -> String {
    let raw = global
        .project_name
        .clone()
        .or_else(|| std::env::var("COMPOSE_PROJECT_NAME").ok())
        .or_else(|| {
            std::env::current_dir()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .unwrap_or_default();
    raw.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

pub(super) fn render(snapshot: &StackSnapshot, source: &Source) -> String {
    let now = snapshot.at_ms;
    let mut rows: Vec<[String; 6]> = vec![[
        "SERVICE".into(),
        "STATE".into(),
        "SINCE".into(),
        "PROBE".into(),
        "LATENCY".into(),
        "REASON".into(),
    ]];
    for status in snapshot.services.values() {
        rows.push(row(status, now, matches!(source, Source::Live(_))));
        rows.extend(task_rows(status));
    }
    let mut out = columns(&rows);
    let required = snapshot.services.values().filter(|s| s.required).count();
    let ready = snapshot
        .services
        .values()
        .filter(|s| s.required && s.state.is_ready())
        .count();
    let from = match source {
        Source::Live(listen) => format!("from the muster at {listen}"),
        Source::Probed(mode) => format!("probed once now, address mode {}", mode.as_str()),
    };
    out.push_str(&format!(
        "{ready}/{required} required services ready ({from})\n"
    ));
    for alert in snapshot.alerts() {
        out.push_str(&format!("ALERT {alert}\n"));
    }
    for (name, link) in snapshot.links.iter().filter(|(_, l)| l.is_down()) {
        out.push_str(&format!(
            "{}: {} since {} ({name}: {})\n",
            muster::link::group(name),
            link.state.as_str(),
            clock_utc(link.since_ms),
            link.last_error.as_deref().unwrap_or("no reason given")
        ));
    }
    if let Some(link) = snapshot.engine.as_ref().filter(|l| !l.connected) {
        out.push_str(&format!(
            "ENGINE event stream lost {} ({}); muster cannot see exits or restart until it reconnects\n",
            fmt_age(now.saturating_sub(link.since_ms)),
            link.last_error.as_deref().unwrap_or("no reason given")
        ));
    }
    out
}

/// Rows as aligned columns: every column padded to its widest cell, but the
/// last (free text) one.
pub(super) fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N.saturating_sub(1))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        for (i, width) in widths.iter().enumerate() {
            out.push_str(&format!("{:<width$}  ", r[i]));
        }
        if let Some(last) = r.last() {
            out.push_str(last);
        }
        out.push('\n');
    }
    out
}

fn row(status: &ServiceStatus, now_ms: u64, live: bool) -> [String; 6] {
    // The probe worth showing: the first failing one, else the first.
    let probe = status
        .probes
        .iter()
        .find(|p| p.last.as_ref().is_some_and(|o| o.status != ProbeStatus::Ok))
        .or_else(|| status.probes.first());
    let (kind, latency) = match probe {
        Some(p) => (
            format!("{} {}", p.kind, p.target),
            p.last
                .as_ref()
                .map(|o| fmt_latency(o.latency))
                .unwrap_or_else(|| "-".into()),
        ),
        None => ("-".into(), "-".into()),
    };
    let since = if live {
        fmt_age(now_ms.saturating_sub(status.since_ms))
    } else {
        "-".into()
    };
    let name = if status.required {
        status.name.clone()
    } else {
        format!("{} (optional)", status.name)
    };
    let mut reason = probe
        .filter(|p| p.last.as_ref().is_some_and(|o| o.status != ProbeStatus::Ok))
        .and_then(|p| p.last.as_ref().map(|o| o.reason.clone()))
        .unwrap_or_else(|| status.reason.clone());
    let heal = &status.heal;
    let restarts = heal.muster_restarts + heal.engine_restarts + heal.external_restarts;
    if restarts > 0 {
        reason.push_str(&format!(" [restarts: {restarts}"));
        if heal.budget > 0 {
            reason.push_str(&format!(", budget {}/{}", heal.budget_used, heal.budget));
        }
        reason.push(']');
    }
    if status.degraded && !status.degraded_by.is_empty() {
        reason.push_str(&format!(" [degraded: {}]", status.degraded_by.join(", ")));
    }
    let mut state = if status.degraded && status.state.is_ready() {
        format!("{} (degraded)", status.state)
    } else {
        status.state.to_string()
    };
    if let Some(p) = &status.heal.paused {
        state.push_str(" (paused)");
        reason.push_str(&format!(" [paused by {}", p.by));
        if let Some(why) = &p.reason {
            reason.push_str(&format!(": {why}"));
        }
        reason.push(']');
    }
    [name, state, since, kind, latency, reason]
}

/// One row per task of a Swarm service (`up --swarm --serve`) that Swarm
/// wants running: its id, whether muster's probes pass and Swarm's state,
/// its node (with the node's state when it is not `ready`), and the last
/// probe result or Swarm's reason.
fn task_rows(status: &ServiceStatus) -> Vec<[String; 6]> {
    status
        .tasks
        .iter()
        .filter(|t| t.desired == "running")
        .map(|t| {
            let id: String = t.task_id.chars().take(12).collect();
            let node = match t.node_state.as_str() {
                "ready" => format!("node {}", t.node),
                other => format!("node {} ({other})", t.node),
            };
            let why = match (t.probe.is_empty(), t.reason.is_empty()) {
                (false, _) => t.probe.clone(),
                (true, false) => t.reason.clone(),
                (true, true) => String::new(),
            };
            let ready = if t.ready { "ready" } else { "unready" };
            [
                format!("  task {id}"),
                format!("{ready} ({})", t.state),
                "-".into(),
                node,
                "-".into(),
                why,
            ]
        })
        .collect()
}

pub(super) fn fmt_latency(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// `HH:MM:SS` (UTC) of a unix-ms time, for "since" in status lines.
fn clock_utc(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

pub(super) fn fmt_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m{}s ago", s / 60, s % 60),
        _ => format!("{}h{}m ago", s / 3600, (s % 3600) / 60),
    }
}
