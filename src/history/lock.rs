//! Locks that name their holder and stay held while their process lives.
//!
//! Why here: a rollout holds one lock per service and a supervising muster
//! (`serve`, `up --watch`, `up --serve`) holds one per project; both need the
//! same things on top of [`HistoryStore::acquire_lock`]: an owner string that
//! says who (user, host, pid) so a refusal can name them, a take-over when that
//! process is gone from this host, and a background refresh until released.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{HistoryError, HistoryStore, LockHolder};

/// Who runs muster: `user@host`, and this process's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub user: String,
    pub host: String,
    pub pid: u32,
}

impl Who {
    pub fn current() -> Who {
        let user = ["USER", "LOGNAME"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .find(|v| !v.trim().is_empty())
            .or_else(user_from_passwd)
            .unwrap_or_else(|| "unknown".to_string());
        Who {
            user,
            host: muster_signal::protocol::hostname(),
            pid: std::process::id(),
        }
    }

    /// `user@host`.
    pub fn user_at_host(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// The lock owner string: `user@host pid N`.
    pub fn owner(&self) -> String {
        format!("{}@{} pid {}", self.user, self.host, self.pid)
    }

    /// True when `owner` (`user@host pid N`, maybe followed by more words)
    /// names a process on this host that no longer exists (a muster that was
    /// killed): its lock may be taken over at once.
    pub fn owner_is_dead(&self, owner: &str) -> bool {
        let Some((user_host, rest)) = owner.split_once(" pid ") else {
            return false;
        };
        let Some((_, host)) = user_host.split_once('@') else {
            return false;
        };
        let Some(Ok(pid)) = rest.split_whitespace().next().map(str::parse::<u32>) else {
            return false;
        };
        host == self.host && pid != self.pid && !process_alive(pid)
    }
}

/// True when `pid` runs (a zombie, killed but not yet reaped, does not count).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S …`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The name of this process's user from /etc/passwd (no `USER` in containers).
fn user_from_passwd() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid)
        .map(|f| f[0].to_string())
        .or(Some(format!("uid {uid}")))
}

/// A lock this process holds, refreshed in the background until released.
pub struct HeldLock {
    store: HistoryStore,
    name: String,
    owner: String,
    refresher: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl HeldLock {
    /// Takes lock `name` for `owner` (which should start with
    /// [`Who::owner`]), held for `ttl` and refreshed every `refresh`.
    /// `Ok(Err(holder))` when a live process holds it; a holder that
    /// [`Who::owner_is_dead`] calls gone is taken over.
    pub async fn take(
        store: &HistoryStore,
        name: &str,
        owner: &str,
        who: &Who,
        ttl: Duration,
        refresh: Duration,
    ) -> Result<Result<HeldLock, LockHolder>, HistoryError> {
        let mut last = None;
        for _ in 0..2 {
            match store.acquire_lock(name, owner, ttl).await? {
                Ok(()) => return Ok(Ok(Self::refreshing(store, name, owner, ttl, refresh))),
                Err(holder) if who.owner_is_dead(&holder.owner) => {
                    tracing::warn!(lock = name, holder = %holder.owner, "the lock's owner is gone; taking it over");
                    store.release_lock(name, &holder.owner).await?;
                    last = Some(holder);
                }
                Err(holder) => return Ok(Err(holder)),
            }
        }
        Ok(Err(last.unwrap_or(LockHolder {
            owner: "unknown".into(),
            expires_in_ms: 0,
        })))
    }

    fn refreshing(
        store: &HistoryStore,
        name: &str,
        owner: &str,
        ttl: Duration,
        refresh: Duration,
    ) -> HeldLock {
        let lost = Arc::new(AtomicBool::new(false));
        let refresher = {
            let store = store.clone();
            let name = name.to_string();
            let owner = owner.to_string();
            let lost = lost.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(refresh).await;
                    match store.acquire_lock(&name, &owner, ttl).await {
                        Ok(Ok(())) => {}
                        Ok(Err(holder)) => {
                            tracing::error!(lock = %name, holder = %holder.owner, "lock was taken over");
                            lost.store(true, Ordering::SeqCst);
                        }
                        Err(e) => {
                            tracing::warn!(lock = %name, error = %e, "cannot refresh the lock")
                        }
                    }
                }
            })
        };
        HeldLock {
            store: store.clone(),
            name: name.to_string(),
            owner: owner.to_string(),
            refresher,
            lost,
        }
    }

    /// True when someone else took the lock (ours expired): stop at once.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops refreshing and deletes the lock (if it is still ours).
    pub async fn release(self) {
        self.refresher.abort();
        if let Err(e) = self.store.release_lock(&self.name, &self.owner).await {
            tracing::warn!(lock = %self.name, error = %e, "cannot release the lock (it expires by itself)");
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_owner_detection() {
        let who = Who {
            user: "u".into(),
            host: "h".into(),
            pid: std::process::id(),
        };
        // A pid that cannot exist.
        assert!(who.owner_is_dead("u@h pid 4294967294"));
        assert!(who.owner_is_dead("u@h pid 4294967294 on 127.0.0.1:28700"));
        // Our parent is alive.
        assert!(!who.owner_is_dead(&format!("u@h pid {}", std::os::unix::process::parent_id())));
        assert!(!who.owner_is_dead("u@other pid 4294967294"));
        assert!(!who.owner_is_dead("garbage"));
    }
}
