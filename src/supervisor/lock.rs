//! One supervising muster per stack.
//!
//! Why: two musters healing the same project would both restart the same
//! containers and both claim its health endpoint; the second one must be
//! refused, and the refusal must say where the first one runs. `serve`,
//! `up --watch` and `up --serve` take the lock `supervisor` of the project in
//! the durable store (Redis under `{namespace}:{project}:lock:supervisor`, or
//! the state file), with an owner that names the user, host, pid and health
//! endpoint address; a lock whose process is gone from this host is taken
//! over at once, one whose process died elsewhere expires after [`LOCK_TTL`].

use std::time::Duration;

use crate::history::lock::{HeldLock, Who};
use crate::history::{HistoryError, HistoryOptions, HistoryStore};

/// The lock's lifetime without a refresh (a killed muster's lock on another
/// host frees after this long).
pub const LOCK_TTL: Duration = Duration::from_secs(15);
/// How often the holder refreshes it.
pub const LOCK_REFRESH: Duration = Duration::from_secs(5);
const LOCK_NAME: &str = "supervisor";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("project {project:?} (namespace {namespace:?}) is already supervised by muster {holder}; stop that muster first, or use it (`muster status`); a lock left by a muster that died on another host lapses within {expires_in_s} s")]
    Held {
        project: String,
        namespace: String,
        /// `user@host pid N on ADDR`.
        holder: String,
        expires_in_s: u64,
    },
    #[error("cannot take the supervisor lock of project {project:?}")]
    Store {
        project: String,
        #[source]
        source: HistoryError,
    },
}

/// The project's supervisor lock, held (and refreshed) until dropped or released.
pub struct SupervisorLock(HeldLock);

impl SupervisorLock {
    /// Takes the lock of `project` for this process; `listen` is the health
    /// endpoint's address, named to a second muster that is refused.
    pub async fn take(
        history: &HistoryOptions,
        project: &str,
        listen: Option<std::net::SocketAddr>,
    ) -> Result<SupervisorLock, LockError> {
        let store = HistoryStore::open(history, project).await;
        let who = Who::current();
        let owner = match listen {
            Some(addr) => format!("{} on {addr}", who.owner()),
            None => format!("{} (no health endpoint)", who.owner()),
        };
        let store_error = |source| LockError::Store {
            project: project.to_string(),
            source,
        };
        match HeldLock::take(&store, LOCK_NAME, &owner, &who, LOCK_TTL, LOCK_REFRESH)
            .await
            .map_err(store_error)?
        {
            Ok(lock) => Ok(SupervisorLock(lock)),
            Err(holder) => Err(LockError::Held {
                project: project.to_string(),
                namespace: history.namespace.clone(),
                holder: holder.owner,
                expires_in_s: holder.expires_in_ms.div_ceil(1000),
            }),
        }
    }

    /// Deletes the lock (a dropped one expires by itself after [`LOCK_TTL`]).
    pub async fn release(self) {
        self.0.release().await
    }
}
