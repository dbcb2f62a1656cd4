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
//! [`EngineEvent`]s of `events.rs`), below the supervisor. There is one
//! [`Watcher`] per process and project: it publishes on a
//! `tokio::sync::broadcast`, and every follower subscribes to the same
//! stream (`up`'s service tasks and the healer; `up --serve` / `--watch`
//! hand the healer's watcher to `up`). A follower that falls more than
//! [`CAPACITY`] messages behind is told so by the channel
//! (`RecvError::Lagged`) and never silently misses an exit: a [`Follower`]
//! (the healer) rebuilds its view from a fresh list, `up` re-inspects its
//! own containers. Rollouts do not follow events; they inspect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bollard::query_parameters::{EventsOptions, InspectContainerOptions};
use futures_util::StreamExt;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

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

/// What the watcher tells its followers (`up`, the healer).
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

/// How many messages the broadcast keeps for a slow follower; one further
/// behind gets `RecvError::Lagged` and resyncs.
pub const CAPACITY: usize = 4096;

/// How many containers the watcher inspects at once (events stay in order).
const INSPECTS_AT_ONCE: usize = 8;

/// The sending side, shared by the watcher task and [`Watcher::subscribe`].
struct Hub {
    tx: broadcast::Sender<EngineMsg>,
    /// A first `Resync` has been sent: a follower subscribing from now on
    /// builds its first view from a list of its own. Held while sending a
    /// `Resync` and while subscribing, so no follower gets two first views
    /// or none.
    synced: Mutex<bool>,
}

impl Hub {
    fn send(&self, msg: EngineMsg) {
        // No follower right now is fine: one may subscribe later.
        let _ = self.tx.send(msg);
    }

    fn send_resync(&self, msg: EngineMsg) {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.tx.send(msg);
        *synced = true;
    }
}

struct Running {
    hub: Arc<Hub>,
    engine: Engine,
    project: String,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The process's one engine watcher for a project: one event stream, any
/// number of followers. Clones share it; it stops when the last is dropped.
#[derive(Clone)]
pub struct Watcher {
    running: Arc<Running>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("project", &self.running.project)
            .field("followers", &self.running.hub.tx.receiver_count())
            .finish()
    }
}

impl Watcher {
    /// Starts following `project`'s containers (see [`run`]).
    pub fn spawn(engine: Engine, project: String, reconnect: Reconnect) -> Watcher {
        Watcher::with_capacity(engine, project, reconnect, CAPACITY)
    }

    /// As [`Watcher::spawn`], with room for `capacity` messages per follower.
    pub fn with_capacity(
        engine: Engine,
        project: String,
        reconnect: Reconnect,
        capacity: usize,
    ) -> Watcher {
        Watcher::with_link(engine, project, reconnect, capacity, LinkReporter::new())
    }

    /// As [`Watcher::spawn`], saying on `link` whether the event stream is
    /// up (`/status` `links.engine`).
    pub fn spawn_linked(
        engine: Engine,
        project: String,
        reconnect: Reconnect,
        link: LinkReporter,
    ) -> Watcher {
        Watcher::with_link(engine, project, reconnect, CAPACITY, link)
    }

    fn with_link(
        engine: Engine,
        project: String,
        reconnect: Reconnect,
        capacity: usize,
        link: LinkReporter,
    ) -> Watcher {
        let hub = Arc::new(Hub {
            tx: broadcast::channel(capacity.max(1)).0,
            synced: Mutex::new(false),
        });
        tracing::info!(project = %project, "engine watcher started (one event stream, shared by up and the healer)");
        // Taken now, not when the task first runs: a follower subscribing
        // right after this sees every event from here on.
        let since = since_now();
        let task = tokio::spawn(run(
            engine.clone(),
            project.clone(),
            hub.clone(),
            reconnect,
            since,
            link,
        ));
        Watcher {
            running: Arc::new(Running {
                hub,
                engine,
                project,
                task,
            }),
        }
    }

    /// A follower that gets a view of the whole project first (the
    /// watcher's own first `Resync`, or a list of its own when that was sent
    /// before it subscribed), then every message, and a fresh `Resync` from
    /// a list whenever it lagged.
    pub fn subscribe(&self) -> Follower {
        let hub = &self.running.hub;
        let synced = hub.synced.lock().unwrap_or_else(|e| e.into_inner());
        let rx = hub.tx.subscribe();
        Follower {
            rx,
            engine: self.running.engine.clone(),
            project: self.running.project.clone(),
            pending: *synced,
            retry_at: None,
        }
    }

    /// The raw messages from now on; the caller handles `Lagged` itself
    /// (`up` re-inspects the containers it follows).
    pub fn receiver(&self) -> broadcast::Receiver<EngineMsg> {
        self.running.hub.tx.subscribe()
    }
}

/// One follower of a [`Watcher`] that is never behind without knowing it.
pub struct Follower {
    rx: broadcast::Receiver<EngineMsg>,
    engine: Engine,
    project: String,
    /// A `Resync` from a list is owed (first view, or after a lag).
    pending: bool,
    /// That list failed: try again at this time.
    retry_at: Option<tokio::time::Instant>,
}

impl Follower {
    /// The next message; `None` when the watcher is gone. Cancel-safe (it
    /// can sit in a `select!`): an owed resync stays owed until delivered.
    pub async fn recv(&mut self) -> Option<EngineMsg> {
        loop {
            if self.pending {
                if let Some(at) = self.retry_at {
                    tokio::time::sleep_until(at).await;
                }
                let msg = match list_project(&self.engine, &self.project).await {
                    Ok(containers) => {
                        self.pending = false;
                        self.retry_at = None;
                        EngineMsg::Resync {
                            containers,
                            reconnect: false,
                        }
                    }
                    Err(e) => {
                        let retry_in = Duration::from_secs(1);
                        self.retry_at = Some(tokio::time::Instant::now() + retry_in);
                        EngineMsg::Down {
                            error: format!("cannot list the project's containers: {e}"),
                            retry_in,
                        }
                    }
                };
                return Some(msg);
            }
            match self.rx.recv().await {
                Ok(msg) => return Some(msg),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "engine events came faster than they were followed; view rebuilt from a list"
                    );
                    // From the newest message on; the list covers what was skipped.
                    self.rx = self.rx.resubscribe();
                    self.pending = true;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// Follows the project's events until aborted: (re)connect, rebuild,
/// stream, and on any end of the stream wait (doubling delay) and start
/// over. Every message goes to every follower of `hub`.
async fn run(
    engine: Engine,
    project: String,
    hub: Arc<Hub>,
    reconnect: Reconnect,
    first_since: String,
    link: LinkReporter,
) {
    let mut delay = reconnect.first;
    let mut again = false;
    let mut opened_streams = 0u64;
    let mut first_since = Some(first_since);
    loop {
        let since = first_since.take().unwrap_or_else(since_now);
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![labels::project_filter(&project)]),
        ]);
        // Each event is published with its container's state right after it:
        // the inspects run a few at a time, the events stay in order, so one
        // slow inspect does not hold back the events behind it for long.
        let events = engine
            .docker()
            .events(Some(EventsOptions {
                filters: Some(filters),
                since: Some(since),
                until: None,
            }))
            .map(|item| {
                let engine = engine.clone();
                async move {
                    let event = super::events::from_message(item?);
                    if event.container_id.is_empty() {
                        return Ok(None);
                    }
                    let state = match event.action {
                        Action::Create | Action::Start | Action::Die | Action::HealthStatus => {
                            inspect(&engine, &event.container_id)
                                .await
                                .ok()
                                .map(Box::new)
                        }
                        _ => None,
                    };
                    Ok::<_, bollard::errors::Error>(Some(EngineMsg::Event { event, state }))
                }
            })
            .buffered(INSPECTS_AT_ONCE);
        let mut stream = Box::pin(events);
        opened_streams += 1;
        tracing::debug!(project = %project, opened_streams, "engine event stream opened");
        let error = match list_project(&engine, &project).await {
            Ok(containers) => {
                link.connected();
                hub.send_resync(EngineMsg::Resync {
                    containers,
                    reconnect: again,
                });
                let opened = tokio::time::Instant::now();
                let mut delivered = false;
                let error = loop {
                    match stream.next().await {
                        Some(Ok(None)) => {}
                        Some(Ok(Some(msg))) => {
                            delivered = true;
                            hub.send(msg);
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
        hub.send(EngineMsg::Down {
            error,
            retry_in: delay,
        });
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2).min(reconnect.max);
        again = true;
    }
}
