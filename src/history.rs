//! Durable state that outlives a muster process: start-up history (grace
//! tuning), rollout revisions, and rollout locks. It lives in Redis under
//! `{namespace}:{project}:…`, or, when Redis is not configured or not
//! reachable, in a local JSON state file (one file can hold many projects).
//!
//! Every value is JSON. Lists are newest first and capped on push.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::link::{LinkReporter, LinkWatch};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod lock;

use crate::clock::now_ms;
use crate::url::redact_url;

/// How long `open` waits for Redis before falling back to the state file.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Connection attempts that time out before falling back to the state file:
/// a Redis that is only slow (a loaded host) must not split the history in
/// two, while a refused connection falls back at once.
const REDIS_CONNECT_ATTEMPTS: u32 = 3;
/// Reconnection tries the connection manager makes for one command after
/// the link broke (exponential backoff up to 2 s between them).
const REDIS_RECONNECT_TRIES: usize = 4;
/// Each Redis command after connecting.
const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// A state-file lock older than this was left by a crashed process.
const STALE_FILE_LOCK: Duration = Duration::from_secs(30);
/// How long to wait for another process's state-file lock.
const FILE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Take the lock when free, refresh it when ours, else report the holder and its PTTL.
const ACQUIRE_LOCK_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return {1, ''}
end
return {0, cur, redis.call('PTTL', KEYS[1])}
";

/// Delete the lock only when its owner asks.
const RELEASE_LOCK_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// `source` is Redis's own error, when there is one (not for a timeout).
    #[error("history in Redis at {url}: {message}")]
    Redis {
        url: String,
        message: String,
        #[source]
        source: Option<redis::RedisError>,
    },
    #[error("state file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{place}: stored value is not valid JSON ({message}); left untouched")]
    Corrupt { place: String, message: String },
}

/// Who holds a lock, when `acquire_lock` finds it taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub owner: String,
    /// Time left before the lock expires by itself.
    pub expires_in_ms: u64,
}

#[derive(Clone)]
enum Backend {
    Redis {
        /// Reconnects by itself after Redis restarts or the link drops: the
        /// command that meets the broken link fails, the ones after it go
        /// to a new connection (a plain multiplexed connection stayed broken
        /// for good, and every history write failed with "broken pipe").
        conn: LinkedConn,
        url: String,
    },
    File {
        path: PathBuf,
    },
}

/// Where the durable store lives: Redis first, the state file when Redis is
/// unreachable. Built by the settings (flag, environment, config file, default).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryOptions {
    pub redis_url: String,
    /// The first part of every key (`{namespace}:{project}:…`).
    pub namespace: String,
    /// The local fallback.
    pub state_file: PathBuf,
}

/// The durable store of one project. Cheap to clone.
#[derive(Clone)]
pub struct HistoryStore {
    backend: Backend,
    /// `{namespace}:{project}`: the prefix of every key.
    prefix: String,
}

impl std::fmt::Debug for HistoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl HistoryStore {
    /// Redis from `options` when it answers (within 1.5 s, three tries),
    /// else the state file (with a warning that says why).
    pub async fn open(options: &HistoryOptions, project: &str) -> HistoryStore {
        match Self::redis(&options.redis_url, &options.namespace, project).await {
            Ok(store) => store,
            Err(e) => {
                let store = Self::file(&options.state_file, &options.namespace, project);
                tracing::warn!(error = %e, state_file = %options.state_file.display(), "history: Redis unreachable, using the local state file");
                store
            }
        }
    }

    /// The Redis backend; fails when Redis does not answer PING in time.
    pub async fn redis(url: &str, namespace: &str, project: &str) -> Result<Self, HistoryError> {
        let shown = redact_url(url);
        let err = |message: String, source: Option<redis::RedisError>| HistoryError::Redis {
            url: shown.clone(),
            message,
            source,
        };
        let client = redis::Client::open(url).map_err(|e| err(e.to_string(), Some(e)))?;
        let connect = || async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>(conn)
        };
        let mut attempt = 1;
        let _answered = loop {
            match tokio::time::timeout(REDIS_CONNECT_TIMEOUT, connect()).await {
                Ok(result) => break result.map_err(|e| err(e.to_string(), Some(e)))?,
                Err(_) if attempt < REDIS_CONNECT_ATTEMPTS => {
                    tracing::debug!(url = %shown, attempt, "history: Redis slow to answer; trying again");
                    attempt += 1;
                }
                Err(_) => {
                    return Err(err(
                        format!(
                            "no answer within {REDIS_CONNECT_TIMEOUT:?}, {REDIS_CONNECT_ATTEMPTS} times"
                        ),
                        None,
                    ))
                }
            }
        };
        // Redis answered; from here on a manager keeps the link, reconnecting
        // with backoff (bounded tries per command; every command has its own
        // timeout below as well).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
            .set_number_of_retries(REDIS_RECONNECT_TRIES)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| err(e.to_string(), Some(e)))?;
        let link = LinkReporter::new();
        link.connected();
        let conn = LinkedConn { conn, link };
        Ok(HistoryStore {
            backend: Backend::Redis { conn, url: shown },
            prefix: format!("{namespace}:{project}"),
        })
    }

    /// The state-file backend (the file is created on the first write).
    pub fn file(path: &Path, namespace: &str, project: &str) -> Self {
        HistoryStore {
            backend: Backend::File {
                path: path.to_path_buf(),
            },
            prefix: format!("{namespace}:{project}"),
        }
    }

    /// Where the data lives, for output: `redis redis://… (muster:proj)` or `file /path (muster:proj)`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Redis { url, .. } => format!("redis {url} ({})", self.prefix),
            Backend::File { path } => format!("file {} ({})", path.display(), self.prefix),
        }
    }

    /// The Redis link's state, as the commands find it (`None` for the state file).
    pub fn link(&self) -> Option<LinkWatch> {
        match &self.backend {
            Backend::Redis { conn, .. } => Some(conn.link.subscribe()),
            Backend::File { .. } => None,
        }
    }

    pub fn is_redis(&self) -> bool {
        matches!(self.backend, Backend::Redis { .. })
    }

    /// The full key of `name`: `{namespace}:{project}:{name}`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Adds `value` at the front of list `name`, keeping at most `cap` entries.
    pub async fn push(&self, name: &str, value: &Value, cap: usize) -> Result<(), HistoryError> {
        let key = self.key(name);
        let text = value.to_string();
        match &self.backend {
            Backend::Redis { conn, url } => {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .lpush(&key, text)
                    .ignore()
                    .ltrim(&key, 0, cap.max(1) as isize - 1)
                    .ignore();
                redis_query::<()>(conn, url, &pipe).await
            }
            Backend::File { path } => {
                let value = value.clone();
                with_state_file(path, move |state| {
                    let list = state.lists.entry(key).or_default();
                    list.insert(0, value);
                    list.truncate(cap.max(1));
                    Ok(((), true))
                })
                .await
            }
        }
    }

    /// Up to `limit` entries of list `name`, newest first.
    pub async fn list(&self, name: &str, limit: usize) -> Result<Vec<Value>, HistoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = self.key(name);
        match &self.backend {
            Backend::Redis { conn, url } => {
                let mut cmd = redis::cmd("LRANGE");
                cmd.arg(&key).arg(0).arg(limit as isize - 1);
                let raw: Vec<String> = redis_cmd(conn, url, &cmd).await?;
                raw.iter()
                    .map(|text| parse_json(text, &key))
                    .collect::<Result<_, _>>()
            }
            Backend::File { path } => {
                with_state_file(path, move |state| {
                    let list = state.lists.get(&key).cloned().unwrap_or_default();
                    Ok((list.into_iter().take(limit).collect(), false))
                })
                .await
            }
        }
    }

    /// Replaces entry `index` (0 = newest) of list `name`. Fails when there is none.
    pub async fn set_in_list(
        &self,
        name: &str,
        index: usize,
        value: &Value,
    ) -> Result<(), HistoryError> {
        let key = self.key(name);
        match &self.backend {
            Backend::Redis { conn, url } => {
                let mut cmd = redis::cmd("LSET");
                cmd.arg(&key).arg(index).arg(value.to_string());
                redis_cmd::<()>(conn, url, &cmd).await
            }
            Backend::File { path } => {
                let value = value.clone();
                let shown = path.clone();
                with_state_file(path, move |state| {
                    match state.lists.get_mut(&key).and_then(|l| l.get_mut(index)) {
                        Some(slot) => {
                            *slot = value;
                            Ok(((), true))
                        }
                        None => Err(HistoryError::File {
                            path: shown,
                            message: format!("{key} has no entry {index}"),
                        }),
                    }
                })
                .await
            }
        }
    }

    /// The value under `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<Value>, HistoryError> {
        let key = self.key(name);
        match &self.backend {
            Backend::Redis { conn, url } => {
                let mut cmd = redis::cmd("GET");
                cmd.arg(&key);
                let raw: Option<String> = redis_cmd(conn, url, &cmd).await?;
                raw.map(|text| parse_json(&text, &key)).transpose()
            }
            Backend::File { path } => {
                with_state_file(path, move |state| {
                    Ok((state.values.get(&key).cloned(), false))
                })
                .await
            }
        }
    }

    /// Stores `value` under `name` (no expiry).
    pub async fn set(&self, name: &str, value: &Value) -> Result<(), HistoryError> {
        let key = self.key(name);
        match &self.backend {
            Backend::Redis { conn, url } => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(&key).arg(value.to_string());
                redis_cmd::<()>(conn, url, &cmd).await
            }
            Backend::File { path } => {
                let value = value.clone();
                with_state_file(path, move |state| {
                    state.values.insert(key, value);
                    Ok(((), true))
                })
                .await
            }
        }
    }

    /// Removes the value under `name` (nothing when absent).
    pub async fn delete(&self, name: &str) -> Result<(), HistoryError> {
        let key = self.key(name);
        match &self.backend {
            Backend::Redis { conn, url } => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(&key);
                redis_cmd::<()>(conn, url, &cmd).await
            }
            Backend::File { path } => {
                with_state_file(path, move |state| {
                    let changed = state.values.remove(&key).is_some();
                    Ok(((), changed))
                })
                .await
            }
        }
    }

    /// Adds one to counter `name` and returns the new value (the first call gives 1).
    pub async fn next_counter(&self, name: &str) -> Result<u64, HistoryError> {
        let key = self.key(name);
        match &self.backend {
            Backend::Redis { conn, url } => {
                let mut cmd = redis::cmd("INCR");
                cmd.arg(&key);
                redis_cmd(conn, url, &cmd).await
            }
            Backend::File { path } => {
                with_state_file(path, move |state| {
                    let counter = state.counters.entry(key).or_insert(0);
                    *counter += 1;
                    Ok((*counter, true))
                })
                .await
            }
        }
    }

    /// Takes lock `name` for `owner` for `ttl`. `Ok(Err(holder))` when someone
    /// else holds it; taking a lock one already holds refreshes it.
    pub async fn acquire_lock(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Result<(), LockHolder>, HistoryError> {
        let key = self.key(&format!("lock:{name}"));
        let ttl_ms = ttl.as_millis().max(1) as u64;
        match &self.backend {
            Backend::Redis { conn, url } => {
                // Take it when free, refresh it when ours, else report the holder.
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(ACQUIRE_LOCK_LUA)
                    .arg(1)
                    .arg(&key)
                    .arg(owner)
                    .arg(ttl_ms);
                let reply: Vec<redis::Value> = redis_cmd(conn, url, &cmd).await?;
                let taken: i64 = reply
                    .first()
                    .and_then(|v| redis::from_redis_value_ref(v).ok())
                    .unwrap_or(0);
                if taken == 1 {
                    return Ok(Ok(()));
                }
                let holder: String = reply
                    .get(1)
                    .and_then(|v| redis::from_redis_value_ref(v).ok())
                    .unwrap_or_default();
                let pttl: i64 = reply
                    .get(2)
                    .and_then(|v| redis::from_redis_value_ref(v).ok())
                    .unwrap_or(0);
                Ok(Err(LockHolder {
                    owner: holder,
                    expires_in_ms: pttl.max(0) as u64,
                }))
            }
            Backend::File { path } => {
                let owner = owner.to_string();
                with_state_file(path, move |state| {
                    let now = now_ms();
                    if let Some(lock) = state.locks.get(&key) {
                        if lock.expires_ms > now && lock.owner != owner {
                            let holder = LockHolder {
                                owner: lock.owner.clone(),
                                expires_in_ms: lock.expires_ms - now,
                            };
                            return Ok((Err(holder), false));
                        }
                    }
                    state.locks.insert(
                        key,
                        FileLock {
                            owner,
                            expires_ms: now + ttl_ms,
                        },
                    );
                    Ok((Ok(()), true))
                })
                .await
            }
        }
    }

    /// Releases lock `name` when `owner` holds it (a lock taken over by someone
    /// else after it expired is left alone).
    pub async fn release_lock(&self, name: &str, owner: &str) -> Result<(), HistoryError> {
        let key = self.key(&format!("lock:{name}"));
        match &self.backend {
            Backend::Redis { conn, url } => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(RELEASE_LOCK_LUA).arg(1).arg(&key).arg(owner);
                redis_cmd::<i64>(conn, url, &cmd).await?;
                Ok(())
            }
            Backend::File { path } => {
                let owner = owner.to_string();
                with_state_file(path, move |state| {
                    let ours = state.locks.get(&key).is_some_and(|l| l.owner == owner);
                    if ours {
                        state.locks.remove(&key);
                    }
                    Ok(((), ours))
                })
                .await
            }
        }
    }
}

/// An owner id for locks: host, pid and start time, so a lock names who took it.
pub fn lock_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}:{}:{}", std::process::id(), now_ms())
}

fn parse_json(text: &str, place: &str) -> Result<Value, HistoryError> {
    serde_json::from_str(text).map_err(|e| HistoryError::Corrupt {
        place: place.to_string(),
        message: e.to_string(),
    })
}

fn redis_error(url: &str, e: redis::RedisError) -> HistoryError {
    HistoryError::Redis {
        url: url.to_string(),
        message: e.to_string(),
        source: Some(e),
    }
}

fn redis_timeout(url: &str) -> HistoryError {
    HistoryError::Redis {
        url: url.to_string(),
        message: format!("no answer within {REDIS_COMMAND_TIMEOUT:?}"),
        source: None,
    }
}

/// The connection manager and the link state its commands report: every
/// command says whether Redis answered (a Redis error reply, such as
/// WRONGTYPE, is an answer).
#[derive(Clone)]
struct LinkedConn {
    conn: ConnectionManager,
    link: LinkReporter,
}

impl LinkedConn {
    fn report<T>(&self, result: Result<T, HistoryError>) -> Result<T, HistoryError> {
        let lost = match &result {
            Err(HistoryError::Redis { source: None, .. }) => true,
            Err(HistoryError::Redis {
                source: Some(e), ..
            }) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
            }
            _ => false,
        };
        match &result {
            Err(e) if lost => self.link.failed(&e.to_string()),
            _ => self.link.connected(),
        }
        result
    }
}

async fn redis_cmd<T: redis::FromRedisValue>(
    conn: &LinkedConn,
    url: &str,
    cmd: &redis::Cmd,
) -> Result<T, HistoryError> {
    let mut c = conn.conn.clone();
    let result = tokio::time::timeout(REDIS_COMMAND_TIMEOUT, cmd.query_async(&mut c))
        .await
        .map_err(|_| redis_timeout(url))
        .and_then(|r| r.map_err(|e| redis_error(url, e)));
    conn.report(result)
}

async fn redis_query<T: redis::FromRedisValue>(
    conn: &LinkedConn,
    url: &str,
    pipe: &redis::Pipeline,
) -> Result<T, HistoryError> {
    let mut c = conn.conn.clone();
    let result = tokio::time::timeout(REDIS_COMMAND_TIMEOUT, pipe.query_async(&mut c))
        .await
        .map_err(|_| redis_timeout(url))
        .and_then(|r| r.map_err(|e| redis_error(url, e)));
    conn.report(result)
}

/// The state file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    #[serde(default)]
    lists: BTreeMap<String, Vec<Value>>,
    #[serde(default)]
    values: BTreeMap<String, Value>,
    #[serde(default)]
    counters: BTreeMap<String, u64>,
    #[serde(default)]
    locks: BTreeMap<String, FileLock>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileLock {
    owner: String,
    expires_ms: u64,
}

/// Runs `f` on the state file under a cross-process lock file. `f` returns
/// its result and whether it changed anything; a change is written to a
/// temporary file and renamed over the old one, so a crash never leaves half a
/// file. A file that does not parse is reported and never overwritten.
async fn with_state_file<R: Send + 'static>(
    path: &Path,
    f: impl FnOnce(&mut StateFile) -> Result<(R, bool), HistoryError> + Send + 'static,
) -> Result<R, HistoryError> {
    let path = path.to_path_buf();
    let shown = path.clone();
    tokio::task::spawn_blocking(move || {
        let _guard = FileLockGuard::take(&path)?;
        let mut state = read_state_file(&path)?;
        let (result, changed) = f(&mut state)?;
        if changed {
            write_state_file(&path, &state)?;
        }
        Ok(result)
    })
    .await
    .map_err(|e| HistoryError::File {
        path: shown,
        message: format!("state file task failed: {e}"),
    })?
}

fn file_error(path: &Path, what: &str, e: impl std::fmt::Display) -> HistoryError {
    HistoryError::File {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

fn read_state_file(path: &Path) -> Result<StateFile, HistoryError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(StateFile::default()),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| HistoryError::Corrupt {
            place: path.display().to_string(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile::default()),
        Err(e) => Err(file_error(path, "cannot read", e)),
    }
}

fn write_state_file(path: &Path, state: &StateFile) -> Result<(), HistoryError> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| file_error(path, "cannot create its folder", e))?;
    }
    let tmp = sibling(path, ".tmp");
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| file_error(path, "encode", e))?;
    let mut file = std::fs::File::create(&tmp).map_err(|e| file_error(&tmp, "cannot create", e))?;
    file.write_all(&bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| file_error(&tmp, "cannot write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_error(path, "cannot replace", e))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// `{state file}.lock`, created exclusively; removed on drop. A lock file older
/// than [`STALE_FILE_LOCK`] is taken to be a crashed process's and replaced.
struct FileLockGuard(PathBuf);

impl FileLockGuard {
    fn take(path: &Path) -> Result<FileLockGuard, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| file_error(path, "cannot create its folder", e))?;
        }
        let lock = sibling(path, ".lock");
        let started = std::time::Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(_) => return Ok(FileLockGuard(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_FILE_LOCK);
                    if stale {
                        let _ = std::fs::remove_file(&lock);
                        continue;
                    }
                    if started.elapsed() > FILE_LOCK_WAIT {
                        return Err(file_error(
                            path,
                            "locked",
                            format!("{} held for over {FILE_LOCK_WAIT:?}", lock.display()),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(file_error(&lock, "cannot create lock", e)),
            }
        }
    }
}

impl Drop for FileLockGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp_file(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("muster-history-{}-{name}", std::process::id()))
            .join("state.json")
    }

    #[tokio::test]
    async fn file_backend_lists_values_counters_and_locks() {
        let path = temp_file("unit");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let store = HistoryStore::file(&path, "muster", "proj");
        for i in 0..5 {
            store
                .push("startup:api", &json!({ "n": i }), 3)
                .await
                .unwrap();
        }
        let list = store.list("startup:api", 10).await.unwrap();
        assert_eq!(list, vec![json!({"n":4}), json!({"n":3}), json!({"n":2})]);
        store
            .set_in_list("startup:api", 1, &json!("x"))
            .await
            .unwrap();
        assert_eq!(store.list("startup:api", 2).await.unwrap()[1], json!("x"));
        assert!(store
            .set_in_list("startup:api", 7, &json!(1))
            .await
            .is_err());

        assert_eq!(store.get("rollout:api").await.unwrap(), None);
        store.set("rollout:api", &json!({"rev": 2})).await.unwrap();
        assert_eq!(
            store.get("rollout:api").await.unwrap(),
            Some(json!({"rev": 2}))
        );
        store.delete("rollout:api").await.unwrap();
        assert_eq!(store.get("rollout:api").await.unwrap(), None);

        assert_eq!(store.next_counter("rev:api").await.unwrap(), 1);
        assert_eq!(store.next_counter("rev:api").await.unwrap(), 2);

        let ttl = Duration::from_secs(60);
        assert_eq!(store.acquire_lock("api", "a", ttl).await.unwrap(), Ok(()));
        let held = store
            .acquire_lock("api", "b", ttl)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(held.owner, "a");
        store.release_lock("api", "b").await.unwrap();
        assert!(store.acquire_lock("api", "b", ttl).await.unwrap().is_err());
        store.release_lock("api", "a").await.unwrap();
        assert_eq!(store.acquire_lock("api", "b", ttl).await.unwrap(), Ok(()));

        // Another project in the same file sees none of it.
        let other = HistoryStore::file(&path, "muster", "other");
        assert!(other.list("startup:api", 10).await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn corrupt_state_file_is_reported_and_kept() {
        let path = temp_file("corrupt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{ not json").unwrap();
        let store = HistoryStore::file(&path, "muster", "proj");
        let e = store.push("x", &json!(1), 5).await.unwrap_err().to_string();
        assert!(
            e.contains("state.json") && e.contains("not valid JSON"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
