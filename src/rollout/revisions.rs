//! Revisions, the in-progress record and the rollout lock, all kept in the
//! [`HistoryStore`] (Redis under the namespace, or the local state file):
//!
//! - `revisions:{service}`: the list of [`Revision`]s, newest first, capped by `--history-limit`;
//! - `revision-counter:{service}`: the last revision number handed out;
//! - `rollout:{service}`: the [`InProgress`] record of a rollout that has not finished;
//! - lock `rollout:{service}`: the owner (`user@host pid N`) and a TTL, refreshed while running.

use crate::clock::now_ms;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::options::RolloutOptions;
use super::RolloutError;
use crate::compose::Service;
use crate::history::lock::HeldLock;
pub use crate::history::lock::Who;
use crate::history::{HistoryError, HistoryStore};

/// How long the lock lives without a refresh (a killed muster frees it after this).
pub const LOCK_TTL: Duration = Duration::from_secs(15);
/// How often a running rollout refreshes its lock.
pub const LOCK_REFRESH: Duration = Duration::from_secs(5);
/// Lines of progress kept in the in-progress record (for `rollout status`).
const RECORD_LOG: usize = 40;

/// The label every container a rollout creates carries: its revision number.
pub const REVISION_LABEL: &str = "io.muster.revision";

/// How a revision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    InProgress,
    Succeeded,
    /// Failed and returned (automatically, or by `muster rollback`) to an earlier revision.
    RolledBack,
    /// Failed and could not be returned; or `failure_action: continue` left old containers.
    Failed,
    /// Stopped by `failure_action: pause` or Ctrl-C; `muster rollout status` resumes or reverts it.
    Paused,
    /// A newer rollout replaced it before it finished.
    Superseded,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in_progress",
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Paused => "paused",
            Outcome::Superseded => "superseded",
        }
    }
}

/// What made a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// The containers that ran before the first rollout, recorded as they were.
    Baseline,
    /// `muster rollout`.
    Rollout,
    /// `muster rollback` to an earlier revision (its spec, under a new number).
    Rollback { to: u64 },
}

/// What a rollout changed on top of the compose file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.image.is_none() && self.env.is_empty()
    }

    /// `self` with `newer` on top.
    pub fn merged(&self, newer: &Overrides) -> Overrides {
        let mut env = self.env.clone();
        env.extend(newer.env.clone());
        Overrides {
            image: newer.image.clone().or_else(|| self.image.clone()),
            env,
        }
    }

    /// The compose service with these overrides applied.
    pub fn apply(&self, service: &Service) -> Service {
        let mut s = service.clone();
        if let Some(image) = &self.image {
            s.image = Some(image.clone());
        }
        for (k, v) in &self.env {
            s.environment.insert(k.clone(), Some(v.clone()));
        }
        s
    }

    /// `image=…, env A=1 B=2`, for tables.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(image) = &self.image {
            parts.push(format!("--image {image}"));
        }
        for (k, v) in &self.env {
            parts.push(format!("--env {k}={v}"));
        }
        parts.join(" ")
    }
}

/// One revision of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub number: u64,
    pub service: String,
    #[serde(flatten)]
    pub kind: Kind,
    /// The image reference the containers run.
    pub image: String,
    /// The image ID it resolved to when the revision was made.
    pub image_id: String,
    /// `--image` / `--env` on top of the compose file (cumulative).
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub overrides: Overrides,
    /// The config hash of the containers (`com.docker.compose.config-hash`).
    pub config_hash: String,
    /// The config hash of the compose file's service when the revision was made:
    /// `muster up` keeps this revision only while the file still says the same.
    pub base_hash: String,
    /// The revision that was running before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u64>,
    /// `user@host`.
    pub who: String,
    /// Unix ms.
    pub started_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    pub outcome: Outcome,
    /// Every container of this revision became ready and passed its monitor window.
    pub healthy: bool,
    pub replicas: u32,
    pub replaced: u32,
    pub failures: u32,
    /// Why it ended as it did (the failure, the pause), or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The whole service definition the containers were made from (for an exact rollback).
    pub spec: Service,
}

/// The revisions of one service.
#[derive(Clone)]
pub struct RevisionLog {
    store: HistoryStore,
    service: String,
}

/// Enough to read any list the cap allows.
const LIST_ALL: usize = 10_000;

impl RevisionLog {
    pub fn new(store: &HistoryStore, service: &str) -> RevisionLog {
        RevisionLog {
            store: store.clone(),
            service: service.to_string(),
        }
    }

    fn list_key(&self) -> String {
        format!("revisions:{}", self.service)
    }

    /// Revisions, newest first. An entry that does not parse is an error naming the key.
    pub async fn list(&self) -> Result<Vec<Revision>, RolloutError> {
        let raw = self.store.list(&self.list_key(), LIST_ALL).await?;
        raw.into_iter()
            .map(|v| {
                serde_json::from_value::<Revision>(v).map_err(|e| {
                    RolloutError::History(HistoryError::Corrupt {
                        place: self.store.key(&self.list_key()),
                        message: e.to_string(),
                    })
                })
            })
            .collect()
    }

    pub async fn get(&self, number: u64) -> Result<Option<Revision>, RolloutError> {
        Ok(self.list().await?.into_iter().find(|r| r.number == number))
    }

    /// The next revision number (1 for a service's first).
    pub async fn next_number(&self) -> Result<u64, RolloutError> {
        Ok(self
            .store
            .next_counter(&format!("revision-counter:{}", self.service))
            .await?)
    }

    pub async fn push(&self, revision: &Revision, cap: u32) -> Result<(), RolloutError> {
        let value = serde_json::to_value(revision).map_err(encode_error)?;
        self.store
            .push(&self.list_key(), &value, cap.max(2) as usize)
            .await?;
        Ok(())
    }

    /// Rewrites a revision in place (found by its number). A revision that was
    /// capped out of the list meanwhile is left out, with a warning.
    pub async fn update(&self, revision: &Revision) -> Result<(), RolloutError> {
        let raw = self.store.list(&self.list_key(), LIST_ALL).await?;
        let index = raw
            .iter()
            .position(|v| v.get("number").and_then(Value::as_u64) == Some(revision.number));
        match index {
            Some(i) => {
                let value = serde_json::to_value(revision).map_err(encode_error)?;
                self.store.set_in_list(&self.list_key(), i, &value).await?;
            }
            None => tracing::warn!(
                service = %self.service,
                revision = revision.number,
                "revision is no longer in the history (capped by --history-limit); not updated"
            ),
        }
        Ok(())
    }
}

fn encode_error(e: serde_json::Error) -> RolloutError {
    RolloutError::Service {
        service: String::new(),
        message: format!("cannot encode a revision: {e}"),
    }
}

/// Where an unfinished rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Replacing containers with the new revision.
    Running,
    /// Returning containers to `target` after a failure (or `--revert`).
    Reverting,
    /// Stopped by `failure_action: pause` or Ctrl-C; waits for the operator.
    Paused,
}

/// The record of a rollout that has not finished (`rollout:{service}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InProgress {
    pub service: String,
    /// The revision this rollout made.
    pub revision: u64,
    /// The revision running before it.
    pub from: u64,
    /// What the containers are being brought to: `revision`, or an earlier one while reverting.
    pub target: u64,
    pub phase: Phase,
    /// `user@host pid N` of the process that drives it.
    pub owner: String,
    pub started_ms: u64,
    pub updated_ms: u64,
    pub options: RolloutOptions,
    pub replicas: u32,
    pub replaced: u32,
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Progress lines (sequence number, text), the last few.
    #[serde(default)]
    pub log: Vec<(u64, String)>,
}

impl InProgress {
    pub fn key(service: &str) -> String {
        format!("rollout:{service}")
    }

    pub async fn load(
        store: &HistoryStore,
        service: &str,
    ) -> Result<Option<InProgress>, RolloutError> {
        let key = Self::key(service);
        match store.get(&key).await? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v).map(Some).map_err(|e| {
                RolloutError::History(HistoryError::Corrupt {
                    place: store.key(&key),
                    message: e.to_string(),
                })
            }),
        }
    }

    pub async fn save(&mut self, store: &HistoryStore) -> Result<(), RolloutError> {
        self.updated_ms = now_ms();
        let value = serde_json::to_value(&*self).map_err(encode_error)?;
        store.set(&Self::key(&self.service), &value).await?;
        Ok(())
    }

    pub async fn delete(store: &HistoryStore, service: &str) -> Result<(), RolloutError> {
        store.delete(&Self::key(service)).await?;
        Ok(())
    }

    pub fn push_log(&mut self, line: String) {
        let seq = self.log.last().map(|(s, _)| s + 1).unwrap_or(1);
        self.log.push((seq, line));
        if self.log.len() > RECORD_LOG {
            let cut = self.log.len() - RECORD_LOG;
            self.log.drain(..cut);
        }
    }
}

/// The lock of one service's rollout, refreshed in the background until released.
pub struct ServiceLock(HeldLock);

impl ServiceLock {
    /// Takes the lock for `who`. A lock held by a live process is refused
    /// ([`RolloutError::Locked`], naming the owner); one whose owner died on
    /// this host is taken over.
    pub async fn acquire(
        store: &HistoryStore,
        service: &str,
        who: &Who,
    ) -> Result<ServiceLock, RolloutError> {
        let name = format!("rollout:{service}");
        match HeldLock::take(store, &name, &who.owner(), who, LOCK_TTL, LOCK_REFRESH).await? {
            Ok(lock) => Ok(ServiceLock(lock)),
            Err(holder) => Err(RolloutError::Locked {
                service: service.to_string(),
                owner: holder.owner,
                expires_in_ms: holder.expires_in_ms,
            }),
        }
    }

    /// True when someone else took the lock (ours expired): stop at once.
    pub fn is_lost(&self) -> bool {
        self.0.is_lost()
    }

    pub async fn release(self) {
        self.0.release().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_merge_and_apply() {
        let a = Overrides {
            image: Some("x:1".into()),
            env: [("A".to_string(), "1".to_string())].into(),
        };
        let b = Overrides {
            image: None,
            env: [("B".to_string(), "2".to_string())].into(),
        };
        let m = a.merged(&b);
        assert_eq!(m.image.as_deref(), Some("x:1"));
        assert_eq!(m.env.len(), 2);
        let s = m.apply(&Service {
            name: "s".into(),
            image: Some("x:0".into()),
            ..Default::default()
        });
        assert_eq!(s.image.as_deref(), Some("x:1"));
        assert_eq!(s.environment["B"].as_deref(), Some("2"));
        assert_eq!(m.describe(), "--image x:1 --env A=1 --env B=2");
    }

    #[test]
    fn record_log_is_capped() {
        let mut r = InProgress {
            service: "s".into(),
            revision: 2,
            from: 1,
            target: 2,
            phase: Phase::Running,
            owner: "o".into(),
            started_ms: 0,
            updated_ms: 0,
            options: super::super::options::resolve(
                &Default::default(),
                &Service::default(),
                false,
            )
            .unwrap(),
            replicas: 1,
            replaced: 0,
            failures: 0,
            reason: None,
            log: Vec::new(),
        };
        for i in 0..100 {
            r.push_log(format!("line {i}"));
        }
        assert_eq!(r.log.len(), RECORD_LOG);
        assert_eq!(r.log.last().unwrap(), &(100, "line 99".to_string()));
    }
}
