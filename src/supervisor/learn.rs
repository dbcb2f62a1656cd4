//! Learns start-up times while muster supervises: follows the [`StateStore`]'s
//! events and, each time a service goes `starting` -> `ready` (also through
//! `unready` on the way: the first ready after a start counts), records the
//! time in between as a sample in the [`HistoryStore`].
//!
//! `starting` is entered when the container is started (`up` marks it right
//! before the engine's start call, a restart right after it), so the clock
//! never includes pulling or loading the image. A `starting` that did not
//! start a container (`up` finding it already running, `serve` adopting a
//! running stack) is no start-up: with an engine at hand the recorder checks
//! the containers' StartedAt and skips those.
//!
//! With [`Retune`] the recorder also decides the service's grace again after
//! each sample, so a service that restarts while muster runs gets a period
//! learned from its newest starts (the runner applies it from the next start).
//! A service whose image was not on the engine when grace was first decided
//! (`up` pulls it after that) is decided again when it enters `starting`:
//! the image is there by then, so a huge image gets its size-model period
//! for this very start (the runner stretches the open start window), and
//! its start-ups are recorded against the image ID.
//!
//! It lives in the supervisor, not in `grace/`, because it follows the
//! supervisor's state events: grace (the model, the samples, the decisions)
//! stays a layer below and imports nothing of the supervisor.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::runner::{StateWrites, StatusWrite};
use super::state::Cause;
use super::{ServiceState, StateEvent, StateStore};
use crate::compose::xmuster::GraceSetting;
use crate::engine::Engine;
use crate::grace::history::{load_samples, note_start, record_sample, Samples};
use crate::grace::{
    decide, GraceConfig, GraceDecision, GraceInputs, GraceRun, ImageError, StartKind,
};
use crate::history::HistoryStore;

/// A container that started more than this before `starting` was entered
/// was already running: that `starting` is not a start-up.
const STARTED_TOLERANCE_MS: u64 = 3_000;

#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// Samples kept per service and kind.
    pub keep: usize,
    /// The project, to find a service's containers.
    pub project: String,
    /// When set, a sample is kept only when a container of the service
    /// really started at (or just before) `starting`.
    pub engine: Option<Engine>,
    /// When set, grace is re-tuned after each sample.
    pub retune: Option<Retune>,
}

/// Re-tuning while muster runs: the decisions made at start-up, the
/// coefficients, and where a changed period goes (whoever applies it: the
/// supervisor's probe runner; grace does not know it).
#[derive(Debug, Clone)]
pub struct Retune {
    pub config: GraceConfig,
    pub decisions: HashMap<String, GraceDecision>,
    /// service -> image reference: a decision made before its image was
    /// there (not pulled yet) is made again when the service starts.
    pub references: HashMap<String, String>,
    pub retuned: mpsc::UnboundedSender<Retuned>,
    /// Where the reasons of a decision go (`/status`): the runner, the one
    /// writer of service state.
    pub writes: StateWrites,
}

/// A service's effective start period, decided again after a new start-up
/// sample (it applies from the service's next start) or once its image is on
/// the engine (it also stretches the start under way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retuned {
    pub service: String,
    pub grace: Duration,
}

/// `decision` again with fresh `samples`: the setting, the declared period,
/// the image and the failure window stay as they were decided.
pub fn redecide(cfg: &GraceConfig, decision: &GraceDecision, samples: &Samples) -> GraceDecision {
    let inputs = GraceInputs {
        setting: decision.setting,
        declared: decision.declared,
        image: decision.image.clone().ok_or(ImageError::NotInspected),
        cold: &samples.cold,
        warm: &samples.warm,
        last_image: samples.last_image.as_deref(),
        failure_window: decision.failure_window,
    };
    decide(cfg, &decision.service, &inputs)
}

/// The running recorder. Dropping it stops it at once; [`Recorder::finish`]
/// records what was already seen first.
pub struct Recorder {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts following `store`. `image_ids` maps each service to the image ID
/// its containers run (a service without one is not recorded: its starts
/// cannot be told cold or warm).
pub fn spawn_recorder(
    store: StateStore,
    history: HistoryStore,
    image_ids: HashMap<String, String>,
    options: RecorderOptions,
) -> Recorder {
    // Subscribe now, so nothing that happens after this call is missed.
    let events = store.events();
    let store = store.clone();
    let (stop_tx, stop_rx) = oneshot::channel();
    let state = RecorderState {
        store,
        history,
        image_ids,
        options,
        starts: HashMap::new(),
    };
    let task = tokio::spawn(state.run(events, stop_rx));
    Recorder {
        stop: Some(stop_tx),
        task: Some(task),
    }
}

impl Recorder {
    /// Records the events already seen, then stops (waiting at most `within`).
    pub async fn finish(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(within, task).await.is_err() {
                tracing::warn!("grace: start-up samples not all recorded within {within:?}");
                abort.abort();
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct RecorderState {
    store: StateStore,
    history: HistoryStore,
    image_ids: HashMap<String, String>,
    options: RecorderOptions,
    /// service -> unix ms it became `starting`, and the kind of that start
    /// (`None` when it could not be told).
    starts: HashMap<String, (u64, Option<StartKind>)>,
}

impl RecorderState {
    async fn run(
        mut self,
        mut events: broadcast::Receiver<StateEvent>,
        mut stop: oneshot::Receiver<()>,
    ) {
        loop {
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Ok(event) => self.handle(event).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Starts may have been missed: forget the open ones
                        // rather than record a wrong duration.
                        tracing::warn!(missed = n, "grace: state events missed; open start-ups are not recorded");
                        self.starts.clear();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = &mut stop => {
                    // The caller saw the last `ready` in a snapshot; its
                    // event may still be on its way into the channel.
                    self.store.sync();
                    while let Ok(event) = events.try_recv() {
                        self.handle(event).await;
                    }
                    return;
                }
            }
        }
    }

    async fn handle(&mut self, event: StateEvent) {
        let service = event.service;
        let at = event.transition.at_ms;
        match event.transition.to {
            // An agent starting again inside a running container, or a
            // running container taken over: no container start, so no
            // start-up sample (and none under way).
            ServiceState::Starting
                if matches!(
                    event.transition.cause,
                    Some(Cause::AgentRestarting | Cause::Adopted)
                ) =>
            {
                self.starts.remove(&service);
            }
            ServiceState::Starting => {
                self.image_arrived(&service).await;
                let kind = self.note(&service, at).await;
                self.starts.insert(service, (at, kind));
            }
            ServiceState::Ready => {
                if let Some((start, Some(kind))) = self.starts.remove(&service) {
                    if self.record(&service, kind, start, at).await {
                        self.retune(&service).await;
                    }
                }
            }
            // Not ready yet: the start-up goes on.
            ServiceState::Unready | ServiceState::Failed => {}
            ServiceState::Pending
            | ServiceState::Stopped
            | ServiceState::Completed
            | ServiceState::Blocked => {
                self.starts.remove(&service);
            }
        }
    }

    /// A start begins: cold or warm, and remember its image as the last started.
    async fn note(&self, service: &str, at_ms: u64) -> Option<StartKind> {
        let image = self.image_ids.get(service)?;
        match note_start(&self.history, service, image, at_ms).await {
            Ok(kind) => Some(kind),
            Err(e) => {
                tracing::warn!(service, error = %e, "grace: cannot read or write the last started image; this start is not recorded");
                None
            }
        }
    }

    /// Records one start-up; true when a sample was written.
    async fn record(&self, service: &str, kind: StartKind, start_ms: u64, ready_ms: u64) -> bool {
        let Some(image) = self.image_ids.get(service) else {
            tracing::debug!(service, "grace: no image ID; start-up not recorded");
            return false;
        };
        if ready_ms < start_ms {
            return false;
        }
        if let Some(engine) = &self.options.engine {
            match started_fresh(engine, &self.options.project, service, start_ms).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(
                        service,
                        "grace: the container was already running; not a start-up"
                    );
                    return false;
                }
                Err(e) => {
                    tracing::warn!(service, error = %e, "grace: cannot tell when the container started; start-up not recorded");
                    return false;
                }
            }
        }
        let ms = ready_ms - start_ms;
        match record_sample(
            &self.history,
            service,
            kind,
            image,
            ms,
            ready_ms,
            self.options.keep,
        )
        .await
        {
            Ok(()) => {
                tracing::info!(service, %kind, ms, "grace: start-up recorded");
                true
            }
            Err(e) => {
                tracing::warn!(service, error = %e, "grace: start-up sample not recorded");
                false
            }
        }
    }

    /// A service starts whose grace was decided without its image (it was
    /// not pulled yet): inspect it now and decide again. A changed period
    /// goes to the runner, which applies it to this start too.
    async fn image_arrived(&mut self, service: &str) {
        let keep = self.options.keep;
        let (Some(engine), Some(retune)) = (&self.options.engine, self.options.retune.as_mut())
        else {
            return;
        };
        let Some(before) = retune.decisions.get(service) else {
            return;
        };
        if before.setting != GraceSetting::Auto || before.image.is_some() {
            return;
        }
        let Some(reference) = retune.references.get(service).cloned() else {
            return;
        };
        let facts = match crate::grace::image_facts_of(engine, &reference).await {
            Ok(facts) => facts,
            Err(why) => {
                tracing::debug!(service, reason = %why, "grace: image still cannot be inspected at start");
                return;
            }
        };
        let samples = match load_samples(&self.history, service, keep).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(service, error = %e, "grace: history cannot be read; deciding from the image alone");
                Samples::default()
            }
        };
        let mut with_image = before.clone();
        with_image.image = Some(facts.clone());
        let after = redecide(&retune.config, &with_image, &samples);
        let (from, to) = (before.period, after.period);
        if adopt(retune, service, after) {
            tracing::info!(
                service,
                image = %reference,
                size = %crate::grace::show_size(facts.size),
                from = %crate::duration::format(from),
                to = %crate::duration::format(to),
                "grace: decided again now that the image is on the engine; applies to this start"
            );
        }
        self.image_ids.insert(service.to_string(), facts.id);
    }

    /// Decides `service`'s grace again from its history, after a new sample.
    /// A changed period goes to the runner (from the next start on); the
    /// reasons go to `/status` either way.
    async fn retune(&mut self, service: &str) {
        let keep = self.options.keep;
        let Some(retune) = self.options.retune.as_mut() else {
            return;
        };
        let Some(before) = retune.decisions.get(service) else {
            return;
        };
        if before.setting != GraceSetting::Auto || before.image.is_none() {
            return;
        }
        let samples = match load_samples(&self.history, service, keep).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(service, error = %e, "grace: history cannot be read; grace not re-tuned");
                return;
            }
        };
        let after = redecide(&retune.config, before, &samples);
        let (from, to) = (before.period, after.period);
        if adopt(retune, service, after) {
            tracing::info!(
                service,
                from = %crate::duration::format(from),
                to = %crate::duration::format(to),
                "grace: re-tuned from start-up history; applies from the next start"
            );
        }
    }
}

/// Keeps `after` as `service`'s decision and shows its reasons in `/status`;
/// a changed period goes to the runner. True when the period changed.
fn adopt(retune: &mut Retune, service: &str, after: GraceDecision) -> bool {
    let changed = retune
        .decisions
        .get(service)
        .is_none_or(|before| before.period != after.period);
    if changed {
        let _ = retune.retuned.send(Retuned {
            service: service.to_string(),
            grace: after.period,
        });
    }
    retune
        .writes
        .status(service, StatusWrite::GraceReasons(after.reasons.clone()));
    retune.decisions.insert(service.to_string(), after);
    changed
}

/// True when some container of `service` started at `start_ms` or at most
/// [`STARTED_TOLERANCE_MS`] before (or when the service has no containers to
/// ask about).
async fn started_fresh(
    engine: &Engine,
    project: &str,
    service: &str,
    start_ms: u64,
) -> Result<bool, crate::engine::EngineError> {
    let containers = engine
        .list_project_containers(project, Some(service))
        .await?;
    if containers.is_empty() {
        return Ok(true);
    }
    let floor = i128::from(start_ms.saturating_sub(STARTED_TOLERANCE_MS)) * 1_000_000;
    for c in containers {
        let details = engine.inspect_container(&c.id).await?;
        if details.started_at_ns().is_some_and(|ns| ns >= floor) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The parts of a [`GraceRun`] that touch the supervisor's state: they live
/// here so that grace stays below the supervisor.
impl GraceRun {
    /// Shows each decision's reasons in the services' status (`/status`).
    pub fn publish(&self, writes: &StateWrites) {
        let reasons = self
            .decisions
            .iter()
            .map(|(name, d)| (name.clone(), StatusWrite::GraceReasons(d.reasons.clone())))
            .collect();
        writes.statuses(reasons);
    }

    /// Starts recording start-ups of `project`'s services; with `retuned`,
    /// each new sample also re-tunes the service's grace for its next start
    /// and sends the new period there (the supervisor applies it), and the
    /// reasons to `writes`.
    pub fn spawn_recorder(
        &self,
        writes: &StateWrites,
        engine: &Engine,
        project: &str,
        retuned: Option<tokio::sync::mpsc::UnboundedSender<Retuned>>,
    ) -> Recorder {
        let store = writes.store();
        let retune = retuned.map(|retuned| Retune {
            writes: writes.clone(),
            config: self.config.clone(),
            decisions: self
                .decisions
                .iter()
                .map(|(name, d)| (name.clone(), d.clone()))
                .collect(),
            references: self.references.clone(),
            retuned,
        });
        spawn_recorder(
            store.clone(),
            self.history.clone(),
            self.image_ids(),
            RecorderOptions {
                keep: self.keep,
                project: project.to_string(),
                engine: Some(engine.clone()),
                retune,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grace::history::load_samples;
    use crate::supervisor::{ServiceStatus, Writer};

    #[tokio::test]
    async fn a_new_sample_re_tunes_grace_for_the_next_start() {
        let dir = std::env::temp_dir().join(format!("muster-retune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let history = HistoryStore::file(&dir.join("state.json"), "muster", "p");
        let writer = Writer::new("p");
        writer.insert(ServiceStatus::pending("api"));
        let store = writer.store();
        let image = "sha256:aaa";
        let cfg = GraceConfig::default();
        // Nine warm starts of 20 s already learned: one short of min_samples.
        note_start(&history, "api", image, 1).await.unwrap();
        for i in 0..cfg.min_samples - 1 {
            record_sample(
                &history,
                "api",
                StartKind::Warm,
                image,
                20_000,
                2 + i as u64,
                50,
            )
            .await
            .unwrap();
        }
        let samples = load_samples(&history, "api", 50).await.unwrap();
        let facts = crate::grace::ImageFacts {
            reference: "api:1".into(),
            id: image.into(),
            size: 1 << 20,
            has_healthcheck: false,
            compressed: false,
        };
        let inputs = GraceInputs {
            setting: GraceSetting::Auto,
            declared: Duration::from_secs(5),
            image: Ok(facts),
            cold: &samples.cold,
            warm: &samples.warm,
            last_image: samples.last_image.as_deref(),
            failure_window: Duration::from_secs(3),
        };
        let before = decide(&cfg, "api", &inputs);
        assert_eq!(before.period, Duration::from_secs(5), "{before:?}");
        let (retuned, mut to_runner) = mpsc::unbounded_channel();
        // The runner, the one writer, applies what the recorder sends.
        let writes = StateWrites::own(writer);
        let recorder = spawn_recorder(
            store.clone(),
            history.clone(),
            HashMap::from([("api".to_string(), image.to_string())]),
            RecorderOptions {
                keep: 50,
                project: "p".into(),
                engine: None,
                retune: Some(Retune {
                    config: cfg.clone(),
                    decisions: HashMap::from([("api".to_string(), before)]),
                    references: HashMap::new(),
                    retuned,
                    writes: writes.clone(),
                }),
            },
        );
        // The tenth warm start: now learned, p95 20 s x margin.
        writes.set("api", ServiceState::Starting, "restarted");
        writes.set("api", ServiceState::Ready, "ok");
        writes.sync().await;
        recorder.finish(Duration::from_secs(10)).await;
        let sent = to_runner
            .try_recv()
            .expect("a re-tuned grace for the runner");
        let Retuned { service, grace } = sent;
        assert_eq!(service, "api");
        // p95 of nine 20 s starts and one instant one, times the margin:
        // longer than the declared 5 s, at most 20 s x margin.
        assert!(
            grace > Duration::from_secs(15) && grace <= Duration::from_secs(20).mul_f64(cfg.margin),
            "{grace:?}"
        );
        writes.sync().await;
        let reasons = &store.snapshot().services["api"].grace_reasons;
        assert!(reasons.iter().any(|r| r.contains("learned")), "{reasons:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn records_first_ready_after_each_start_with_its_kind() {
        let dir = std::env::temp_dir().join(format!("muster-recorder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let history = HistoryStore::file(&dir.join("state.json"), "muster", "p");
        let store = Writer::new("p");
        for name in ["api", "db"] {
            store.insert(ServiceStatus::pending(name));
        }
        let images = HashMap::from([("api".to_string(), "sha256:aaa".to_string())]);
        let recorder = spawn_recorder(
            store.store(),
            history.clone(),
            images,
            RecorderOptions {
                keep: 10,
                project: "p".into(),
                engine: None,
                retune: None,
            },
        );
        // A first start that goes through unready: recorded, cold.
        store.transition("api", ServiceState::Starting, "starting");
        store.transition(
            "api",
            ServiceState::Unready,
            "not ready after the start period",
        );
        store.transition("api", ServiceState::Ready, "ok");
        // A later ready without a new start: not a start-up.
        store.transition("api", ServiceState::Unready, "probe failed");
        store.transition("api", ServiceState::Ready, "ok");
        // A start that is stopped before ready: nothing.
        store.transition("api", ServiceState::Starting, "restarted");
        store.transition("api", ServiceState::Stopped, "stopped");
        // A second start of the same image: warm.
        store.transition("api", ServiceState::Starting, "restarted");
        store.transition("api", ServiceState::Ready, "ok");
        // db has no image ID: never recorded.
        store.transition("db", ServiceState::Starting, "starting");
        store.transition("db", ServiceState::Ready, "ok");
        recorder.finish(Duration::from_secs(10)).await;

        let api = load_samples(&history, "api", 10).await.unwrap();
        assert_eq!(api.cold.len(), 1, "{api:?}");
        assert_eq!(api.warm.len(), 1, "{api:?}");
        assert_eq!(api.cold[0].image, "sha256:aaa");
        assert_eq!(api.last_image.as_deref(), Some("sha256:aaa"));
        let db = load_samples(&history, "db", 10).await.unwrap();
        assert!(db.cold.is_empty() && db.warm.is_empty() && db.last_image.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
