//! The engine watcher: follows the project's container events and survives
//! the stream ending (engine restart, socket proxy, network). After
//! every (re)connect the view is rebuilt from the containers' Compose labels
//! (`com.docker.compose.project` / `.service`), so whatever happened while
//! muster was not listening (a container that died, a restart by the engine)
//! is found by comparing the rebuilt view with the old one.
//!
//! The stream is opened with `since` = the moment just before the containers
//! are listed and inspected: events from before that are in the inspected
//! state; events after it come through the stream, and the few that are in
//! both are recognised by the healer (a `start` of a running container, a
//! `die` of a stopped one).
//!
//! It lives in `engine/` (list + watch + resync + reconnect, with the typed
//! [`EngineEvent`]s of `events.rs`), below the supervisor: the healer is its
//! consumer today. `up` and
//! rollouts still open their own `project_events` stream for the length of
//! one command; they read the same typed events.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bollard::query_parameters::{EventsOptions, InspectContainerOptions};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{labels, Action, Engine, EngineError, EngineEvent};
use crate::link::LinkReporter;

/// A container as inspect shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub running: bool,
    /// The engine is about to restart it (restart policy).
    pub restarting: bool,
    /// Docker's RestartCount: restarts by the restart policy.
    pub restart_count: u32,
    /// StartedAt in ns since the epoch; `None` when never started.
    pub started_ns: Option<i128>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub has_healthcheck: bool,
    /// `starting`, `healthy`, `unhealthy`.
    pub health: Option<super::Health>,
    /// The image as the container was created with (`Config.Image`).
    pub image: Option<String>,
}

/// What the watcher tells its consumer (the healer).
#[derive(Debug, Clone)]
pub enum EngineMsg {
    /// The whole project as of now (after a connect or reconnect).
    Resync {
        containers: Vec<ContainerState>,
        reconnect: bool,
    },
    /// One event, with the container's state right after it (for `start`,
    /// `die`, `health_status`; `None` when inspect failed or was not needed).
    Event {
        event: EngineEvent,
        state: Option<Box<ContainerState>>,
    },
    /// The stream ended or could not be opened; retrying after `retry_in`.
    Down { error: String, retry_in: Duration },
}

/// Reconnect delays: the first, doubling up to the cap.
#[derive(Debug, Clone, Copy)]
pub struct Reconnect {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// Bound on one inspect or list call, so a hung engine does not hang the watcher.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Inspects one container.
pub async fn inspect(engine: &Engine, id: &str) -> Result<ContainerState, EngineError> {
    let c = tokio::time::timeout(
        CALL_TIMEOUT,
        engine
            .docker()
            .inspect_container(id, None::<InspectContainerOptions>),
    )
    .await
    .map_err(|_| EngineError::Timeout {
        what: format!("inspect container {id}"),
        after: CALL_TIMEOUT,
    })?
    .map_err(|e| EngineError::api(format!("inspect container {id}"), e))?;
    let state = c.state.unwrap_or_default();
    let config = c.config.unwrap_or_default();
    let container_labels = config.labels.unwrap_or_default();
    let has_healthcheck = config
        .healthcheck
        .as_ref()
        .and_then(|h| h.test.as_deref())
        .is_some_and(super::declares_healthcheck);
    let health = super::health_status(state.health.and_then(|h| h.status));
    let started_ns = state
        .started_at
        .as_deref()
        .and_then(super::parse_rfc3339_ns);
    Ok(ContainerState {
        id: c.id.unwrap_or_else(|| id.to_string()),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        service: container_labels
            .get(labels::SERVICE)
            .cloned()
            .unwrap_or_default(),
        number: container_labels
            .get(labels::CONTAINER_NUMBER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        running: state.running.unwrap_or(false),
        restarting: state.restarting.unwrap_or(false),
        restart_count: c.restart_count.unwrap_or(0).max(0) as u32,
        started_ns,
        exit_code: state.exit_code,
        oom_killed: state.oom_killed.unwrap_or(false),
        has_healthcheck,
        health,
        image: config.image,
    })
}

/// Every container of the project, found by its Compose labels, inspected.
pub async fn list_project(
    engine: &Engine,
    project: &str,
) -> Result<Vec<ContainerState>, EngineError> {
    let list = tokio::time::timeout(CALL_TIMEOUT, engine.list_project_containers(project, None))
        .await
        .map_err(|_| EngineError::Timeout {
            what: format!("list the containers of project {project}"),
            after: CALL_TIMEOUT,
        })??;
    let inspections = list.iter().map(|c| inspect(engine, &c.id));
    let mut out = Vec::with_capacity(list.len());
    for (summary, result) in list
        .iter()
        .zip(futures_util::future::join_all(inspections).await)
    {
        match result {
            Ok(state) => out.push(state),
            // Removed between list and inspect: it is simply gone.
            Err(e) => {
                tracing::debug!(container = %summary.name, error = %e, "container vanished while listing")
            }
        }
    }
    out.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
    Ok(out)
}

/// Docker's `since`: unix seconds with nanoseconds.
fn since_now() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

/// Follows the project's events forever: (re)connect, rebuild, stream, and on
/// any end of the stream wait (doubling delay) and start over. Returns when
/// the healer is gone.
pub async fn run(
    engine: Engine,
    project: String,
    tx: mpsc::Sender<EngineMsg>,
    reconnect: Reconnect,
) {
    run_linked(engine, project, tx, reconnect, LinkReporter::new()).await
}

/// [`run`], saying on `link` whether the stream is up (`/status` `links.engine`).
pub async fn run_linked(
    engine: Engine,
    project: String,
    tx: mpsc::Sender<EngineMsg>,
    reconnect: Reconnect,
    link: LinkReporter,
) {
    let mut delay = reconnect.first;
    let mut again = false;
    loop {
        let since = since_now();
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![labels::project_filter(&project)]),
        ]);
        let mut stream = engine.docker().events(Some(EventsOptions {
            filters: Some(filters),
            since: Some(since),
            until: None,
        }));
        let error = match list_project(&engine, &project).await {
            Ok(containers) => {
                link.connected();
                if tx
                    .send(EngineMsg::Resync {
                        containers,
                        reconnect: again,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                let opened = tokio::time::Instant::now();
                let mut delivered = false;
                let error = loop {
                    match stream.next().await {
                        Some(Ok(msg)) => {
                            let event = super::events::from_message(msg);
                            if event.container_id.is_empty() {
                                continue;
                            }
                            let state = match event.action {
                                Action::Create
                                | Action::Start
                                | Action::Die
                                | Action::HealthStatus => inspect(&engine, &event.container_id)
                                    .await
                                    .ok()
                                    .map(Box::new),
                                _ => None,
                            };
                            delivered = true;
                            if tx.send(EngineMsg::Event { event, state }).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => break format!("event stream failed: {e}"),
                        None => break "event stream ended".to_string(),
                    }
                };
                // A stream that worked for a while starts the backoff afresh.
                if delivered || opened.elapsed() > reconnect.max {
                    delay = reconnect.first;
                }
                error
            }
            Err(e) => format!("cannot list the project's containers: {e}"),
        };
        drop(stream);
        link.failed(&error);
        if tx
            .send(EngineMsg::Down {
                error,
                retry_in: delay,
            })
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2).min(reconnect.max);
        again = true;
    }
}
