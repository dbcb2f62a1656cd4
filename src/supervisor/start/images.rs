//! Which image each service needs and when it is there: the one seam between
//! `up` (and `muster pull`) and the engine's images.
//!
//! Why it exists: a stack's images arrive at very different times (Redis is
//! 20 MB, an agent image 19 GB), and a service must start as soon as *its*
//! image is there. So instead of one up-front "is every image present" map,
//! [`ImageGate`] holds a per-image readiness (`watch` channel) that each
//! service task awaits. Each image is pulled once however many services use
//! it, at most [`PullOptions::parallel`] at a time.
//!
//! [`decide`] is the pure rule per service (Compose's, see the README): an
//! image that is present is used; a missing one is pulled unless the policy
//! is `never`; `always` pulls every time; `daily` / `weekly` /
//! `every_<duration>` pull when the image was last tagged on this engine
//! longer ago than the period (or the engine does not know when);
//! a service with `build:` whose image is missing (or `pull_policy: build`)
//! is [`Decision::Build`] — the arm the build code connects to.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{broadcast, watch, Semaphore};

use crate::compose::{Project, PullPolicy, Service};
use crate::engine::{Engine, PullDone, PullError, PullFailure, PullProgress};

/// How many images are pulled at once (the `pull_parallel` setting).
pub const DEFAULT_PULL_PARALLEL: usize = 4;

/// Pull settings, built by the composition root (`config.rs`).
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Images pulled at the same time.
    pub parallel: usize,
}

impl Default for PullOptions {
    fn default() -> PullOptions {
        PullOptions {
            parallel: DEFAULT_PULL_PARALLEL,
        }
    }
}

/// `up --pull`: overrides every service's `pull_policy`, as in Compose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullOverride {
    Always,
    Missing,
    Never,
}

/// An `up --pull` value that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --pull {0:?} (expected always, missing or never)")]
pub struct PullOverrideError(pub String);

impl std::str::FromStr for PullOverride {
    type Err = PullOverrideError;
    fn from_str(s: &str) -> Result<PullOverride, PullOverrideError> {
        match s {
            "always" => Ok(PullOverride::Always),
            "missing" | "if_not_present" => Ok(PullOverride::Missing),
            "never" => Ok(PullOverride::Never),
            other => Err(PullOverrideError(other.to_string())),
        }
    }
}

impl From<PullOverride> for PullPolicy {
    fn from(o: PullOverride) -> PullPolicy {
        match o {
            PullOverride::Always => PullPolicy::Always,
            PullOverride::Missing => PullPolicy::Missing,
            PullOverride::Never => PullPolicy::Never,
        }
    }
}

/// What the engine has of an image, as [`decide`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// Unix ms of the image's last tag (pull) on this engine, if known.
    pub last_tag_ms: Option<u64>,
}

impl Local {
    /// From the engine's inspect answer.
    pub fn from_info(info: &crate::engine::ImageInfo) -> Local {
        Local {
            last_tag_ms: info
                .last_tag_time
                .as_deref()
                .and_then(crate::engine::parse_rfc3339_ns)
                .map(|ns| (ns / 1_000_000).max(0) as u64),
        }
    }
}

/// What to do for one service's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Present; use it.
    Present,
    /// Pull it (missing, `always`, or older than the refresh period).
    Pull,
    /// The service builds its image (`build:`): the build code's arm.
    Build,
    /// Cannot run: missing and not to be pulled, or no image at all.
    Refuse(String),
}

/// The rule for one service (pure; `now_ms` is the wall clock).
pub fn decide(
    service: &Service,
    policy: Option<PullPolicy>,
    local: Option<Local>,
    now_ms: u64,
) -> Decision {
    let Some(image) = &service.image else {
        return if service.build.is_some() {
            Decision::Build
        } else {
            Decision::Refuse(format!("no image (set `image:` for {})", service.name))
        };
    };
    let policy = policy.unwrap_or(PullPolicy::Missing);
    match (policy, local) {
        (PullPolicy::Build, _) if service.build.is_some() => Decision::Build,
        (PullPolicy::Always, _) => Decision::Pull,
        (PullPolicy::Refresh(every), Some(l)) => match l.last_tag_ms {
            Some(at) if at.saturating_add(every.as_millis() as u64) > now_ms => Decision::Present,
            _ => Decision::Pull,
        },
        (_, Some(_)) => Decision::Present,
        (_, None) if service.build.is_some() => Decision::Build,
        (PullPolicy::Never | PullPolicy::Build, None) => Decision::Refuse(format!(
            "image {image} is not present on the engine and pull_policy is {policy}: pull or load it first"
        )),
        (_, None) => Decision::Pull,
    }
}

/// Where one image is.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageState {
    /// Waiting for a pull slot.
    Queued,
    Pulling(PullProgress),
    Ready,
    Failed(String),
}

/// What `muster pull` and `up` report about pulls, one image at a time.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PullEvent {
    Started {
        image: String,
        services: Vec<String>,
    },
    Progress(PullProgress),
    Done(PullDone),
    Failed {
        image: String,
        services: Vec<String>,
        kind: PullFailure,
        error: String,
    },
}

/// At most one progress event per image per second (`--json`, `/events`).
#[derive(Debug, Default)]
pub struct PullThrottle {
    last: HashMap<String, std::time::Instant>,
}

impl PullThrottle {
    /// Whether a progress event of `image` at `now` goes out.
    pub fn admit(&mut self, image: &str, now: std::time::Instant) -> bool {
        match self.last.get(image) {
            Some(t) if now.duration_since(*t) < std::time::Duration::from_secs(1) => false,
            _ => {
                self.last.insert(image.to_string(), now);
                true
            }
        }
    }
}

/// Per-image readiness for one `up` or `muster pull`.
#[derive(Clone)]
pub struct ImageGate {
    states: Arc<HashMap<String, watch::Receiver<ImageState>>>,
    events: broadcast::Sender<PullEvent>,
    /// The pull tasks, stopped by [`ImageGate::abort`] (Ctrl-C, SIGTERM):
    /// dropping a pull's stream closes its connection, and the engine
    /// cancels the pull.
    pulls: Arc<Vec<tokio::task::AbortHandle>>,
}

impl ImageGate {
    /// An empty gate (nothing to pull).
    pub fn empty() -> ImageGate {
        ImageGate {
            states: Arc::new(HashMap::new()),
            events: broadcast::channel(16).0,
            pulls: Arc::new(Vec::new()),
        }
    }

    /// Stops every pull still running (an interrupted `up`).
    pub fn abort(&self) {
        for pull in self.pulls.iter() {
            pull.abort();
        }
    }

    /// Follows every pull (for progress lines and `--json`).
    pub fn events(&self) -> broadcast::Receiver<PullEvent> {
        self.events.subscribe()
    }

    /// The state of `image`; `None` when it is not pulled in this run.
    pub fn watch(&self, image: &str) -> Option<watch::Receiver<ImageState>> {
        self.states.get(image).cloned()
    }

    /// Starts pulling `pulls` (image -> the services that use it), at most
    /// `options.parallel` at once, each image once, in the order given (`up`
    /// gives the images of the services that start first first, so a big
    /// leaf image does not hold a slot an image on the critical path needs).
    /// Returns at once.
    pub fn start(
        engine: &Engine,
        pulls: impl IntoIterator<Item = (String, Vec<String>)>,
        options: &PullOptions,
        events: broadcast::Sender<PullEvent>,
    ) -> ImageGate {
        let slots = Arc::new(Semaphore::new(options.parallel.max(1)));
        let mut states = HashMap::new();
        let mut handles = Vec::new();
        // Slots are handed out in this order: each pull waits for the one
        // before it to have its slot (a semaphore alone serves tasks in the
        // order the runtime happens to poll them).
        let mut turn: Option<tokio::sync::oneshot::Receiver<()>> = None;
        for (image, services) in pulls {
            let (tx, rx) = watch::channel(ImageState::Queued);
            states.insert(image.clone(), rx);
            let engine = engine.clone();
            let slots = slots.clone();
            let events = events.clone();
            let my_turn = turn.take();
            let (next_tx, next_rx) = tokio::sync::oneshot::channel();
            turn = Some(next_rx);
            let task = tokio::spawn(async move {
                if let Some(my_turn) = my_turn {
                    // An aborted predecessor drops its sender: go on then too.
                    let _ = my_turn.await;
                }
                let slot = slots.acquire_owned().await;
                let _ = next_tx.send(());
                let Ok(_slot) = slot else {
                    return;
                };
                let _ = events.send(PullEvent::Started {
                    image: image.clone(),
                    services: services.clone(),
                });
                // Pulling from now on, also before the registry's first answer.
                tx.send_replace(ImageState::Pulling(PullProgress {
                    image: image.clone(),
                    ..Default::default()
                }));
                let result = engine
                    .pull_image(&image, |p| {
                        tx.send_replace(ImageState::Pulling(p.clone()));
                        let _ = events.send(PullEvent::Progress(p.clone()));
                    })
                    .await;
                match result {
                    Ok(done) => {
                        tracing::info!(image = %done.image, bytes = done.downloaded, elapsed = ?done.elapsed, "pulled");
                        let _ = events.send(PullEvent::Done(done));
                        tx.send_replace(ImageState::Ready);
                    }
                    Err(e) => {
                        let error = crate::error_text::error_chain(&e);
                        tracing::warn!(%image, %error, "pull failed");
                        let _ = events.send(PullEvent::Failed {
                            image: image.clone(),
                            services,
                            kind: e.kind(),
                            error: error.clone(),
                        });
                        tx.send_replace(ImageState::Failed(error));
                    }
                }
            });
            handles.push(task.abort_handle());
        }
        ImageGate {
            states: Arc::new(states),
            events,
            pulls: Arc::new(handles),
        }
    }
}

/// What the engine holds of each image (`None`: not present), asked once
/// per image, all at the same time.
pub async fn local_images(
    engine: &Engine,
    images: BTreeSet<&str>,
) -> Result<HashMap<String, Option<Local>>, crate::engine::EngineError> {
    let asks = images.into_iter().map(|image| async move {
        let info = engine.image_info(image).await?;
        let local = info.as_ref().map(Local::from_info);
        Ok::<_, crate::engine::EngineError>((image.to_string(), local))
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .collect()
}

/// The decision for every service of `names`, and the images to pull
/// (image -> services using it). `policy_of` gives each service's policy
/// (its `pull_policy:`, or `up --pull`'s override).
pub fn plan(
    project: &Project,
    names: &[String],
    local: &HashMap<String, Option<Local>>,
    policy_of: impl Fn(&Service) -> Option<PullPolicy>,
    now_ms: u64,
) -> (BTreeMap<String, Decision>, BTreeMap<String, Vec<String>>) {
    let mut decisions = BTreeMap::new();
    let mut pulls: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in names {
        let service = &project.services[name];
        let here = service
            .image
            .as_ref()
            .and_then(|i| local.get(i).copied().flatten());
        let decision = decide(service, policy_of(service), here, now_ms);
        if decision == Decision::Pull {
            if let Some(image) = &service.image {
                pulls.entry(image.clone()).or_default().push(name.clone());
            }
        }
        decisions.insert(name.clone(), decision);
    }
    (decisions, pulls)
}

/// What `muster pull` did, per image.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub pulled: Vec<PullDone>,
    /// image -> why it was not pulled (`pull_policy: never`, already present, …).
    pub skipped: BTreeMap<String, String>,
    pub failed: Vec<FailedPull>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedPull {
    pub image: String,
    pub services: Vec<String>,
    pub kind: PullFailure,
    pub error: String,
    /// A service of this image can build it instead, so the failure is only a warning.
    pub buildable: bool,
}

/// `muster pull [SERVICES…]`: Compose's rules — services with
/// `pull_policy: never` or `build` are skipped, `missing` / `if_not_present`
/// skip a present image, everything else (also no policy) is pulled.
pub async fn pull_project(
    engine: &Engine,
    project: &Project,
    services: &[String],
    options: &PullOptions,
    events: broadcast::Sender<PullEvent>,
) -> Result<PullReport, PullCommandError> {
    for name in services {
        project.service(name)?;
    }
    let names: Vec<String> = if services.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        services.to_vec()
    };
    let mut skipped = BTreeMap::new();
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut check: BTreeSet<&str> = BTreeSet::new();
    for name in &names {
        let service = &project.services[name];
        let Some(image) = &service.image else {
            continue;
        };
        match service.pull_policy {
            Some(p @ (PullPolicy::Never | PullPolicy::Build)) => {
                skipped.insert(image.clone(), format!("pull_policy: {p}"));
            }
            Some(PullPolicy::Missing) => {
                check.insert(image);
                wanted.entry(image.clone()).or_default().push(name.clone());
            }
            _ => wanted.entry(image.clone()).or_default().push(name.clone()),
        }
    }
    let local = local_images(engine, check).await?;
    for (image, present) in &local {
        let every_missing_only = wanted[image]
            .iter()
            .all(|s| project.services[s].pull_policy == Some(PullPolicy::Missing));
        if present.is_some() && every_missing_only {
            wanted.remove(image);
            skipped.insert(
                image.clone(),
                "already present (pull_policy: missing)".into(),
            );
        }
    }
    for image in wanted.keys() {
        skipped.remove(image);
    }
    let buildable: BTreeSet<String> = wanted
        .iter()
        .filter(|(image, _)| {
            project
                .services
                .values()
                .any(|s| s.build.is_some() && s.image.as_ref() == Some(*image))
        })
        .map(|(image, _)| image.clone())
        .collect();
    let mut follow = events.subscribe();
    let total = wanted.len();
    let gate = ImageGate::start(engine, wanted, options, events);
    let mut report = PullReport {
        pulled: Vec::new(),
        skipped,
        failed: Vec::new(),
    };
    let _keep = gate;
    while report.pulled.len() + report.failed.len() < total {
        match follow.recv().await {
            Ok(PullEvent::Done(done)) => report.pulled.push(done),
            Ok(PullEvent::Failed {
                image,
                services,
                kind,
                error,
            }) => report.failed.push(FailedPull {
                buildable: buildable.contains(&image),
                image,
                services,
                kind,
                error,
            }),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    Ok(report)
}

/// Why `muster pull` could not run at all (per-image failures are in the report).
#[derive(Debug, thiserror::Error)]
pub enum PullCommandError {
    #[error(transparent)]
    UnknownService(#[from] crate::compose::UnknownService),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// One pull of one image with its own progress events (a rollout's `--image`).
pub async fn pull_one(
    engine: &Engine,
    image: &str,
    events: &broadcast::Sender<PullEvent>,
) -> Result<PullDone, PullError> {
    let _ = events.send(PullEvent::Started {
        image: image.to_string(),
        services: Vec::new(),
    });
    let result = engine
        .pull_image(image, |p| {
            let _ = events.send(PullEvent::Progress(p.clone()));
        })
        .await;
    match &result {
        Ok(done) => {
            let _ = events.send(PullEvent::Done(done.clone()));
        }
        Err(e) => {
            let _ = events.send(PullEvent::Failed {
                image: image.to_string(),
                services: Vec::new(),
                kind: e.kind(),
                error: crate::error_text::error_chain(e),
            });
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn svc(image: Option<&str>, build: bool) -> Service {
        Service {
            name: "s".into(),
            image: image.map(String::from),
            build: build.then(Default::default),
            replicas: 1,
            ..Default::default()
        }
    }

    #[test]
    fn compose_pull_rules() {
        let here = Some(Local {
            last_tag_ms: Some(1_000),
        });
        let gone = None;
        let s = svc(Some("app:1"), false);
        assert_eq!(decide(&s, None, here, 0), Decision::Present);
        assert_eq!(decide(&s, None, gone, 0), Decision::Pull);
        assert_eq!(
            decide(&s, Some(PullPolicy::Always), here, 0),
            Decision::Pull
        );
        assert_eq!(
            decide(&s, Some(PullPolicy::Never), here, 0),
            Decision::Present
        );
        assert!(matches!(
            decide(&s, Some(PullPolicy::Never), gone, 0),
            Decision::Refuse(r) if r.contains("pull_policy is never")
        ));
        let daily = Some(PullPolicy::Refresh(Duration::from_secs(86_400)));
        assert_eq!(decide(&s, daily, here, 2_000), Decision::Present);
        assert_eq!(decide(&s, daily, here, 1_000 + 86_400_000), Decision::Pull);
        assert_eq!(
            decide(&s, daily, Some(Local { last_tag_ms: None }), 0),
            Decision::Pull
        );
        assert_eq!(decide(&s, daily, gone, 0), Decision::Pull);
        let b = svc(Some("app:1"), true);
        assert_eq!(decide(&b, None, gone, 0), Decision::Build);
        assert_eq!(decide(&b, None, here, 0), Decision::Present);
        assert_eq!(
            decide(&b, Some(PullPolicy::Build), here, 0),
            Decision::Build
        );
        assert_eq!(decide(&svc(None, true), None, gone, 0), Decision::Build);
        assert!(matches!(
            decide(&svc(None, false), None, gone, 0),
            Decision::Refuse(_)
        ));
    }

    #[test]
    fn throttle_lets_one_event_a_second_per_image() {
        let mut t = PullThrottle::default();
        let t0 = std::time::Instant::now();
        assert!(t.admit("a", t0));
        assert!(!t.admit("a", t0 + Duration::from_millis(999)));
        assert!(t.admit("b", t0 + Duration::from_millis(10)));
        assert!(t.admit("a", t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn one_pull_per_image() {
        let mut p = Project::default();
        for (name, image) in [("a", "x:1"), ("b", "x:1"), ("c", "y:1")] {
            let mut s = svc(Some(image), false);
            s.name = name.into();
            p.services.insert(name.into(), s);
        }
        let local = HashMap::from([
            ("x:1".to_string(), None),
            ("y:1".to_string(), Some(Local { last_tag_ms: None })),
        ]);
        let names: Vec<String> = p.services.keys().cloned().collect();
        let (decisions, pulls) = plan(&p, &names, &local, |s| s.pull_policy, 0);
        assert_eq!(pulls.len(), 1);
        assert_eq!(pulls["x:1"], vec!["a", "b"]);
        assert_eq!(decisions["c"], Decision::Present);
    }
}
