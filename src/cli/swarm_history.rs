//! Revisions of `rollout --swarm` in the same history store as single-host
//! rollouts (`rollout::revisions`: Redis under the namespace, or the state
//! file), so `muster history SERVICE` lists them and `muster rollback SERVICE
//! --swarm` returns a Swarm service to an earlier revision's image.
//!
//! Why here, in the CLI: `swarm` sits below `rollout` in the layers, so the
//! Swarm rollout itself cannot write revisions; the command that runs it
//! records what it did, the way `cli/rollout.rs` drives the single-host one.

use muster::compose::{Project, Service};
use muster::engine::Engine;
use muster::history::HistoryStore;
use muster::rollout::revisions::{Kind, Outcome, Overrides, Revision, RevisionLog, Who};
use muster::swarm::SwarmError;

/// The revision a Swarm service runs: the newest succeeded one with the
/// image the service's spec has now (a Swarm rollback restores the previous
/// spec, and with it the image). `None` when no revision was recorded by a
/// Swarm rollout, or the service is not on the swarm `engine` manages.
pub(super) async fn swarm_active(
    engine: &Engine,
    project: &str,
    service: &str,
    revisions: &[Revision],
) -> Option<u64> {
    if !revisions
        .iter()
        .any(|r| r.config_hash.starts_with(SWARM_HASH))
    {
        return None;
    }
    let name = muster::swarm::spec::scoped(project, service);
    let found = muster::swarm::raw::inspect_service(engine.host(), &engine.api_version(), &name)
        .await
        .ok()??;
    let image = found.spec["TaskTemplate"]["ContainerSpec"]["Image"].as_str()?;
    let image = image.split('@').next().unwrap_or(image);
    revisions
        .iter()
        .find(|r| r.outcome == Outcome::Succeeded && r.image == image)
        .map(|r| r.number)
}

/// The config hash of a Swarm revision starts with this (the spec lives in Swarm).
const SWARM_HASH: &str = "swarm ";

/// Default cap of revisions per service (as `--history-limit`).
const HISTORY_LIMIT: u32 = 10;

/// How a Swarm rollout (or rollback) ended, for its revision.
pub(super) struct Ended {
    pub image: String,
    pub outcome: Outcome,
    pub healthy: bool,
    pub ready: u32,
    pub message: String,
}

impl Ended {
    /// From the rollout's result: succeeded with its ready tasks, or rolled
    /// back / failed with the error's text.
    pub fn from<T>(
        image: &str,
        result: &Result<T, SwarmError>,
        ready: impl Fn(&T) -> u32,
    ) -> Ended {
        match result {
            Ok(report) => Ended {
                image: image.to_string(),
                outcome: Outcome::Succeeded,
                healthy: true,
                ready: ready(report),
                message: String::new(),
            },
            Err(e) => Ended {
                image: image.to_string(),
                outcome: match e {
                    SwarmError::RolledBack(_) => Outcome::RolledBack,
                    _ => Outcome::Failed,
                },
                healthy: false,
                ready: 0,
                message: e.to_string(),
            },
        }
    }
}

/// The store and the service's revisions, newest first.
pub(super) struct SwarmRevisions {
    log: RevisionLog,
    pub revisions: Vec<Revision>,
    compose: Service,
}

impl SwarmRevisions {
    pub async fn open(
        store: &HistoryStore,
        project: &Project,
        service: &str,
    ) -> Result<SwarmRevisions, Box<dyn std::error::Error + Send + Sync>> {
        let compose = project.service(service)?.clone();
        let log = RevisionLog::new(store, service);
        let revisions = log.list().await?;
        Ok(SwarmRevisions {
            log,
            revisions,
            compose,
        })
    }

    /// The revision that runs: the newest that succeeded.
    pub fn active(&self) -> Option<&Revision> {
        self.revisions
            .iter()
            .find(|r| r.outcome == Outcome::Succeeded)
    }

    /// Records the image that ran before the first Swarm rollout as a
    /// baseline revision (so there is something to roll back to); returns
    /// the number of the revision that runs now.
    pub async fn baseline(
        &mut self,
        running: &str,
    ) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
        if let Some(active) = self.active() {
            return Ok(active.number);
        }
        let now = muster::clock::now_ms();
        let ended = Ended {
            image: running.to_string(),
            outcome: Outcome::Succeeded,
            healthy: true,
            ready: self.compose.replicas,
            message: "running on the swarm before the first `muster rollout --swarm`".into(),
        };
        let revision = self.record(Kind::Baseline, None, now, ended).await?;
        Ok(revision.number)
    }

    /// Records one rollout or rollback that started at `started_ms`.
    pub async fn record(
        &mut self,
        kind: Kind,
        previous: Option<u64>,
        started_ms: u64,
        ended: Ended,
    ) -> Result<Revision, Box<dyn std::error::Error + Send + Sync>> {
        let overrides = Overrides {
            image: Some(ended.image.clone()),
            env: Default::default(),
        };
        let revision = Revision {
            number: self.log.next_number().await?,
            service: self.compose.name.clone(),
            kind,
            image: ended.image.clone(),
            image_id: String::new(),
            spec: overrides.apply(&self.compose),
            overrides,
            config_hash: format!("{SWARM_HASH}{}", ended.image),
            base_hash: muster::compose::hash::config_hash(&self.compose),
            previous,
            who: Who::current().user_at_host(),
            started_ms,
            finished_ms: Some(muster::clock::now_ms()),
            outcome: ended.outcome,
            healthy: ended.healthy,
            replicas: self.compose.replicas,
            replaced: ended.ready,
            failures: u32::from(!ended.healthy),
            message: ended.message,
        };
        self.log.push(&revision, HISTORY_LIMIT).await?;
        self.revisions.insert(0, revision.clone());
        Ok(revision)
    }
}
