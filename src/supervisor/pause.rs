//! Maintenance: `muster pause SERVICE` / `muster resume SERVICE`.
//!
//! Why: during planned work on one service (a migration, a manual restart, a
//! debugging session) the healer must not restart it and must not page
//! anyone, while every other service stays supervised. The paused services
//! are one JSON map in the durable store (`{namespace}:{project}:paused`,
//! Redis or the state file), so a pause outlives the muster that saw it and
//! holds for the next one; a running healer reads it every [`POLL`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::state::PauseNote;
use crate::history::{HistoryError, HistoryStore};

/// The history key of the paused services.
pub const PAUSED_KEY: &str = "paused";
/// How often a running healer reads the paused services.
pub const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("unknown service {service:?} in project {project:?} (its services: {known})")]
    UnknownService {
        service: String,
        project: String,
        known: String,
    },
    #[error("the paused services cannot be read or written")]
    Store(#[from] HistoryError),
}

/// The paused services of the store's project (none when nothing was
/// stored; a stored value that is not such a map is an error).
pub async fn load(store: &HistoryStore) -> Result<BTreeMap<String, PauseNote>, HistoryError> {
    match store.get(PAUSED_KEY).await? {
        None => Ok(BTreeMap::new()),
        Some(value) => serde_json::from_value(value).map_err(|e| HistoryError::Corrupt {
            place: store.key(PAUSED_KEY),
            message: e.to_string(),
        }),
    }
}

/// Pauses `service` (one of `known`); pausing a paused service keeps its
/// first note. Returns the note in force.
pub async fn pause(
    store: &HistoryStore,
    project: &str,
    known: &[String],
    service: &str,
    note: PauseNote,
) -> Result<PauseNote, PauseError> {
    check_known(project, known, service)?;
    let mut paused = load(store).await?;
    let note = paused.entry(service.to_string()).or_insert(note).clone();
    save(store, &paused).await?;
    Ok(note)
}

/// Resumes `service`; returns the note it was paused with (`None`: it was not paused).
pub async fn resume(
    store: &HistoryStore,
    project: &str,
    known: &[String],
    service: &str,
) -> Result<Option<PauseNote>, PauseError> {
    check_known(project, known, service)?;
    let mut paused = load(store).await?;
    let was = paused.remove(service);
    if was.is_some() {
        save(store, &paused).await?;
    }
    Ok(was)
}

fn check_known(project: &str, known: &[String], service: &str) -> Result<(), PauseError> {
    if known.iter().any(|k| k == service) {
        return Ok(());
    }
    Err(PauseError::UnknownService {
        service: service.to_string(),
        project: project.to_string(),
        known: known.join(", "),
    })
}

async fn save(
    store: &HistoryStore,
    paused: &BTreeMap<String, PauseNote>,
) -> Result<(), HistoryError> {
    if paused.is_empty() {
        return store.delete(PAUSED_KEY).await;
    }
    let value = serde_json::to_value(paused).map_err(|e| HistoryError::Corrupt {
        place: store.key(PAUSED_KEY),
        message: e.to_string(),
    })?;
    store.set(PAUSED_KEY, &value).await
}
