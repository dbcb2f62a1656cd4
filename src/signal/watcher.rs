//! The supervisor side of ready signals: [`AgentWatcher`] keeps the current
//! signal of every agent, driven by events (`{ns}:events:{agent}`, the
//! version-1 clients' `{ns}:events`, keyspace expiry
//! notifications, optionally NATS) rather than by polling. When the
//! subscription drops it reads the keys on a period until it can subscribe again.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

mod events;
mod nats;

use crate::clock::now_ms;
use crate::link::{LinkReporter, LinkWatch};
use muster_signal::client::open_client;
use muster_signal::read::{EXPIRED, NO_SIGNAL};
use muster_signal::{
    agent_events_pattern, events_channel, notready_key, ready_key, validate_name,
    validate_namespace, Readiness, SignalError,
};

/// How the watcher is set up.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    pub redis_url: String,
    pub namespace: String,
    /// Also listen on NATS `{ns}.ready.>` when set.
    pub nats_url: Option<String>,
    /// While the subscription is down: read every known key this often.
    pub poll_period: Duration,
    /// While subscribed: re-read every key this often anyway (safety net; also finds agents
    /// that wrote keys without publishing).
    pub resync_period: Duration,
    /// Turn on keyspace expiry notifications (`CONFIG SET notify-keyspace-events Ex`) when off.
    pub enable_expiry_events: bool,
    /// Per connection attempt and command.
    pub timeout: Duration,
    /// After Redis was unreachable (or restarted), how long an agent keeps
    /// the state it had when its key is found missing: a Redis restart
    /// without persistence loses every key, and a live agent re-asserts its
    /// signal at its next heartbeat (every TTL/2). Default: half the
    /// protocol's default TTL plus 2 s. Expiry events and the agents' own
    /// signals are applied at once, hold or not.
    pub reassert_window: Duration,
}

impl WatcherConfig {
    pub fn new(redis_url: impl Into<String>, namespace: impl Into<String>) -> Self {
        WatcherConfig {
            redis_url: redis_url.into(),
            namespace: namespace.into(),
            nats_url: None,
            poll_period: Duration::from_secs(1),
            resync_period: Duration::from_secs(30),
            enable_expiry_events: true,
            timeout: Duration::from_secs(2),
            reassert_window: muster_signal::DEFAULT_TTL / 2 + Duration::from_secs(2),
        }
    }
}

/// Where the watcher learned an agent's current signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Event,
    Expiry,
    Poll,
    Nats,
}

/// The watcher's current view of one agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    pub readiness: Readiness,
    /// Unix ms the watcher last changed this view.
    pub updated_ms: u64,
    pub source: Source,
}

/// Sent to [`AgentWatcher::changes`] receivers on every change of an agent's view.
#[derive(Debug, Clone)]
pub struct AgentChange {
    pub agent: String,
    pub view: AgentView,
}

/// Whether Redis tells the watcher about expired keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum ExpiryNotifications {
    /// Not connected yet.
    Unknown,
    /// `notify-keyspace-events` already had `Ex`.
    Enabled,
    /// muster turned them on with `CONFIG SET`.
    EnabledByMuster,
    /// Off, and muster may not turn them on: expiry is seen only by the periodic resync.
    Unavailable(String),
}

struct Inner {
    config: WatcherConfig,
    view: RwLock<BTreeMap<String, AgentView>>,
    tracked: Mutex<BTreeSet<String>>,
    changes: broadcast::Sender<AgentChange>,
    version: watch::Sender<u64>,
    subscribed: watch::Sender<bool>,
    nats_subscribed: AtomicBool,
    expiry: RwLock<ExpiryNotifications>,
    /// Agents to read now, and why: newly tracked ones, and agents named by
    /// a NATS event (a hint; the keys are the truth).
    commands: mpsc::UnboundedSender<(String, Source)>,
    /// Keys under the namespace that name no valid agent (not UTF-8, or a
    /// name the protocol refuses), each warned about once and then skipped.
    /// Bounded: past [`MAX_WARNED_KEYS`] further ones are skipped silently.
    warned_keys: Mutex<HashSet<Vec<u8>>>,
    /// The coordination outage: when the watcher lost Redis, and until when
    /// missing keys are not taken as agents gone (see `reassert_window`).
    outage: Mutex<Outage>,
    /// Whether the last `FUNCTION LOAD` worked (`Err`: why not), so a change is logged once.
    functions: Mutex<Result<(), String>>,
    /// The subscription to Redis (connected while subscribed) and to NATS,
    /// as `/status` `links.redis` / `links.nats` show them.
    redis_link: LinkReporter,
    nats_link: LinkReporter,
}

/// Redis outages as the watcher saw them.
#[derive(Debug, Default)]
struct Outage {
    /// Set when the subscription or a connection attempt failed.
    down_since: Option<Instant>,
    /// After Redis answered again: missing keys are held until then.
    hold_until: Option<Instant>,
    /// Agents whose missing key is being held, each logged once.
    held: BTreeSet<String>,
}

/// How many distinct invalid keys the watcher remembers having warned about.
const MAX_WARNED_KEYS: usize = 1024;

struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Keeps every agent's current ready signal. Cheap to clone; its background
/// tasks stop when the last clone drops.
#[derive(Clone)]
pub struct AgentWatcher {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for AgentWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentWatcher")
            .field("namespace", &self.inner.config.namespace)
            .field("subscribed", &self.is_subscribed())
            .finish()
    }
}

impl AgentWatcher {
    /// Starts watching (inside a tokio runtime). Returns at once; Redis may
    /// still be down: the watcher keeps trying. Fails only on a bad URL or namespace.
    pub fn start(config: WatcherConfig) -> Result<AgentWatcher, SignalError> {
        validate_namespace(&config.namespace)?;
        let client = open_client(&config.redis_url)?;
        let (changes, _) = broadcast::channel(4096);
        let (version, _) = watch::channel(0);
        let (subscribed, _) = watch::channel(false);
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            config,
            view: RwLock::new(BTreeMap::new()),
            tracked: Mutex::new(BTreeSet::new()),
            changes,
            version,
            subscribed,
            nats_subscribed: AtomicBool::new(false),
            expiry: RwLock::new(ExpiryNotifications::Unknown),
            commands: tx,
            warned_keys: Mutex::new(HashSet::new()),
            outage: Mutex::new(Outage::default()),
            functions: Mutex::new(Err(String::new())),
            redis_link: LinkReporter::new(),
            nats_link: LinkReporter::new(),
        });
        let mut tasks = vec![tokio::spawn(redis_loop(inner.clone(), client, rx))];
        if let Some(url) = inner.config.nats_url.clone() {
            tasks.push(tokio::spawn(nats::follow(inner.clone(), url)));
        }
        Ok(AgentWatcher {
            inner,
            _tasks: Arc::new(Tasks(tasks)),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.inner.config.namespace
    }

    /// Makes sure `agent` is read now and on every resync, even before it sent anything.
    pub fn track(&self, agent: &str) -> Result<(), SignalError> {
        validate_name(agent)?;
        let new = lock(&self.inner.tracked).insert(agent.to_string());
        if new {
            let _ = self.inner.commands.send((agent.to_string(), Source::Poll));
        }
        Ok(())
    }

    /// The current view of one agent (None: never seen).
    pub fn get(&self, agent: &str) -> Option<AgentView> {
        read(&self.inner.view).get(agent).cloned()
    }

    /// The agent's readiness; not ready ("no ready signal seen yet") when never seen.
    pub fn readiness(&self, agent: &str) -> Readiness {
        self.get(agent)
            .map(|v| v.readiness)
            .unwrap_or_else(|| Readiness::NotReady {
                reason: "no ready signal seen yet".to_string(),
                since_ms: None,
            })
    }

    /// Every agent seen so far.
    pub fn snapshot(&self) -> BTreeMap<String, AgentView> {
        read(&self.inner.view).clone()
    }

    /// The start deadline (unix ms) of an agent that is `starting` with a deadline in the future.
    pub fn start_deadline_ms(&self, agent: &str) -> Option<u64> {
        self.get(agent)
            .and_then(|v| v.readiness.start_deadline_ms())
            .filter(|d| *d > now_ms())
    }

    /// Every change of every agent's view.
    pub fn changes(&self) -> broadcast::Receiver<AgentChange> {
        self.inner.changes.subscribe()
    }

    /// A counter bumped on every change (for `watch`-style waiting).
    pub fn version(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// True while subscribed to `{ns}:events:*`, `{ns}:events` (and the expiry channel).
    pub fn is_subscribed(&self) -> bool {
        *self.inner.subscribed.borrow()
    }

    /// The watcher's links, for `/status` and `/metrics`: `redis` (the
    /// subscription; connected while subscribed) and, when configured, `nats`.
    pub fn links(&self) -> Vec<(&'static str, LinkWatch)> {
        let mut links = vec![("redis", self.inner.redis_link.subscribe())];
        if self.inner.config.nats_url.is_some() {
            links.push(("nats", self.inner.nats_link.subscribe()));
        }
        links
    }

    /// True while subscribed on NATS.
    pub fn is_nats_subscribed(&self) -> bool {
        self.inner.nats_subscribed.load(Ordering::SeqCst)
    }

    pub fn expiry_notifications(&self) -> ExpiryNotifications {
        read(&self.inner.expiry).clone()
    }

    /// Waits until the Redis subscription is up (and the first resync done).
    pub async fn wait_subscribed(&self, within: Duration) -> bool {
        let mut rx = self.inner.subscribed.subscribe();
        tokio::time::timeout(within, rx.wait_for(|s| *s))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }

    /// Waits until `pred` holds for the agent's view; returns it, or None after `within`.
    pub async fn wait_for(
        &self,
        agent: &str,
        within: Duration,
        pred: impl Fn(&Readiness) -> bool,
    ) -> Option<AgentView> {
        let mut version = self.version();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            version.borrow_and_update();
            if let Some(v) = self.get(agent) {
                if pred(&v.readiness) {
                    return Some(v);
                }
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// The agent a `{ns}:ready:{agent}` key (as Redis returned it) belongs
    /// to, or `None` for a key of another kind. A key under the ready prefix
    /// that is not UTF-8 or not a valid agent name is skipped, with one WARN
    /// the first time it is seen.
    fn agent_of_key(&self, key: &[u8]) -> Option<String> {
        let prefix = format!("{}:ready:", self.config.namespace);
        let rest = key.strip_prefix(prefix.as_bytes())?;
        let problem = match std::str::from_utf8(rest) {
            Ok(agent) => match validate_name(agent) {
                Ok(()) => return Some(agent.to_string()),
                Err(e) => e.to_string(),
            },
            Err(_) => "the agent name is not UTF-8".to_string(),
        };
        let mut warned = lock(&self.warned_keys);
        if warned.len() < MAX_WARNED_KEYS && warned.insert(key.to_vec()) {
            tracing::warn!(
                key = %String::from_utf8_lossy(key).escape_debug(),
                problem = %problem,
                "skipping a key under the ready prefix that names no valid agent (delete it with redis-cli DEL)"
            );
        }
        None
    }

    /// Redis could not be reached, or the subscription dropped.
    fn lost_redis(&self) {
        let mut outage = lock(&self.outage);
        outage.down_since.get_or_insert_with(Instant::now);
    }

    /// Redis answers again after an outage: from now, a missing
    /// key is held for `reassert_window`. Returns when the hold ends.
    fn reached_redis(&self) -> Option<Instant> {
        let mut outage = lock(&self.outage);
        if let Some(since) = outage.down_since.take() {
            let until = Instant::now() + self.config.reassert_window;
            outage.hold_until = Some(until);
            tracing::info!(
                down_for = ?since.elapsed(),
                hold = ?self.config.reassert_window,
                "coordination Redis is back; agents whose keys are missing keep their last state while they re-assert"
            );
        }
        outage.hold_until
    }

    /// True when a poll that found no key for `agent` must not change its
    /// view: inside the hold after an outage, and the agent was last seen
    /// in a live state.
    fn hold_missing(&self, agent: &str, old: &AgentView, new: &Readiness) -> bool {
        let missing =
            matches!(new, Readiness::NotReady { reason, since_ms: None } if reason == NO_SIGNAL);
        let was_live = matches!(
            old.readiness,
            Readiness::Ready { .. } | Readiness::Starting { .. }
        );
        if !missing || !was_live {
            return false;
        }
        let mut outage = lock(&self.outage);
        let Some(until) = outage.hold_until else {
            return false;
        };
        if Instant::now() >= until {
            outage.hold_until = None;
            outage.held.clear();
            return false;
        }
        if outage.held.insert(agent.to_string()) {
            tracing::info!(agent, left = ?until.saturating_duration_since(Instant::now()),
                "key missing after the Redis outage; keeping the agent's last state until it re-asserts or the hold ends");
        }
        true
    }

    fn apply(&self, agent: &str, readiness: Readiness, source: Source) {
        {
            let mut view = write(&self.view);
            if let Some(old) = view.get(agent) {
                if old.readiness == readiness {
                    return;
                }
                if source == Source::Poll && self.hold_missing(agent, old, &readiness) {
                    return;
                }
            }
            let v = AgentView {
                readiness,
                updated_ms: now_ms(),
                source,
            };
            tracing::debug!(agent, status = v.readiness.status(), reason = %v.readiness.reason(), ?source, "agent signal");
            view.insert(agent.to_string(), v.clone());
            let _ = self.changes.send(AgentChange {
                agent: agent.to_string(),
                view: v,
            });
        }
        self.version.send_modify(|n| *n += 1);
    }
}

async fn command_connection(
    client: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
}

/// Loads (or replaces) the protocol's function library, so agents can write
/// with `FCALL` and their ACL user needs no `EVAL`. Done on every connect: a
/// Redis restarted without persistence has lost it.
async fn load_functions(conn: &mut MultiplexedConnection) -> Result<(), String> {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(muster_signal::FUNCTION_LIBRARY)
        .query_async::<String>(conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks (and, when allowed, turns on) keyspace expiry notifications.
async fn ensure_expiry_events(
    conn: &mut MultiplexedConnection,
    enable: bool,
) -> ExpiryNotifications {
    let current: Result<Vec<String>, _> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query_async(conn)
        .await;
    let flags = match current {
        Ok(v) => v.get(1).cloned().unwrap_or_default(),
        Err(e) => {
            return ExpiryNotifications::Unavailable(format!(
                "CONFIG GET notify-keyspace-events refused: {e}"
            ))
        }
    };
    if flags.contains('E') && (flags.contains('x') || flags.contains('A')) {
        return ExpiryNotifications::Enabled;
    }
    if !enable {
        return ExpiryNotifications::Unavailable(format!(
            "notify-keyspace-events is {flags:?} (needs E and x) and enabling it is turned off"
        ));
    }
    let mut wanted = flags.clone();
    for c in ['E', 'x'] {
        if !wanted.contains(c) {
            wanted.push(c);
        }
    }
    let set: Result<(), _> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg(&wanted)
        .query_async(conn)
        .await;
    match set {
        Ok(()) => ExpiryNotifications::EnabledByMuster,
        Err(e) => ExpiryNotifications::Unavailable(format!(
            "notify-keyspace-events is {flags:?} and CONFIG SET was refused: {e}"
        )),
    }
}

/// Reads every known agent (tracked, seen, and `{ns}:ready:*` found by SCAN).
async fn resync(inner: &Inner, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
    let ns = &inner.config.namespace;
    let mut agents: BTreeSet<String> = lock(&inner.tracked).clone();
    agents.extend(read(&inner.view).keys().cloned());
    let pattern = format!("{ns}:ready:*");
    let mut cursor: u64 = 0;
    loop {
        // Keys as bytes: anyone allowed to write under the namespace can
        // create a key that is not UTF-8, and it must not break the resync.
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        for k in keys {
            if let Some(a) = inner.agent_of_key(&k) {
                agents.insert(a);
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let agents: Vec<String> = agents.into_iter().collect();
    for chunk in agents.chunks(500) {
        read_agents(inner, conn, chunk, Source::Poll).await?;
    }
    Ok(())
}

async fn read_agents(
    inner: &Inner,
    conn: &mut MultiplexedConnection,
    agents: &[String],
    source: Source,
) -> redis::RedisResult<()> {
    if agents.is_empty() {
        return Ok(());
    }
    let ns = &inner.config.namespace;
    let mut cmd = redis::cmd("MGET");
    for a in agents {
        cmd.arg(ready_key(ns, a));
    }
    for a in agents {
        cmd.arg(notready_key(ns, a));
    }
    let values: Vec<Option<Vec<u8>>> = cmd.query_async(conn).await?;
    let n = agents.len();
    for (i, a) in agents.iter().enumerate() {
        let ready = values.get(i).cloned().flatten();
        let notready = values.get(n + i).cloned().flatten();
        inner.apply(
            a,
            Readiness::decode(ready.as_deref(), notready.as_deref()),
            source,
        );
    }
    Ok(())
}

async fn redis_loop(
    inner: Arc<Inner>,
    client: redis::Client,
    mut track_rx: mpsc::UnboundedReceiver<(String, Source)>,
) {
    let cfg = inner.config.clone();
    let events = events_channel(&cfg.namespace);
    let own_pattern = agent_events_pattern(&cfg.namespace);
    let own_prefix = own_pattern.trim_end_matches('*').to_string();
    let db = client.get_connection_info().redis_settings().db();
    let expired_channel = format!("__keyevent@{db}__:expired");
    let mut warned_down = false;
    loop {
        // 1. Connect: a command connection and a subscription.
        let attempt = async {
            let mut conn = command_connection(&client, cfg.timeout).await?;
            let mut pubsub = tokio::time::timeout(cfg.timeout, client.get_async_pubsub())
                .await
                .map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Io, "pubsub connect timed out"))
                })??;
            // A muster user from before protocol v2 may lack the pattern
            // (`&{ns}:events:*`, `+psubscribe`): then follow the shared
            // channel only, as an older muster would, and say so.
            let own = pubsub.psubscribe(&own_pattern).await;
            pubsub.subscribe(&events).await?;
            pubsub.subscribe(&expired_channel).await?;
            let expiry = ensure_expiry_events(&mut conn, cfg.enable_expiry_events).await;
            let functions = load_functions(&mut conn).await;
            Ok::<_, redis::RedisError>((conn, pubsub, expiry, functions, own))
        };
        let (mut conn, pubsub, expiry, functions, own) = match attempt.await {
            Ok(x) => x,
            Err(e) => {
                inner.lost_redis();
                inner.redis_link.failed(&e.to_string());
                if !warned_down {
                    tracing::warn!(error = %e, redis = %crate::url::redact_url(&cfg.redis_url),
                        "agent watcher cannot subscribe; reading keys every {:?} until it can",
                        cfg.poll_period);
                    warned_down = true;
                }
                // Fallback: read the keys if a plain connection works.
                if let Ok(mut conn) = command_connection(&client, cfg.timeout).await {
                    inner.reached_redis();
                    let _ = resync(&inner, &mut conn).await;
                }
                drain_tracked(&mut track_rx);
                tokio::time::sleep(cfg.poll_period).await;
                continue;
            }
        };
        let loaded_before = std::mem::replace(&mut *lock(&inner.functions), functions.clone());
        if loaded_before != functions {
            match &functions {
                Ok(()) => tracing::info!(
                    library = muster_signal::FUNCTION_LIBRARY_NAME,
                    "loaded the ready-signal functions into Redis; agents may use FCALL without EVAL"
                ),
                Err(why) => tracing::warn!(
                    library = muster_signal::FUNCTION_LIBRARY_NAME,
                    "could not load the ready-signal functions ({why}); agents fall back to EVAL, \
                     and an agent user without +eval cannot signal (grant muster +function|load, Redis 7+)"
                ),
            }
        }
        let previous = std::mem::replace(&mut *write(&inner.expiry), expiry.clone());
        if previous != expiry {
            match &expiry {
                ExpiryNotifications::Enabled => {
                    tracing::info!("keyspace expiry notifications are on")
                }
                ExpiryNotifications::EnabledByMuster => tracing::info!(
                    "turned on keyspace expiry notifications (CONFIG SET notify-keyspace-events Ex)"
                ),
                ExpiryNotifications::Unavailable(why) => tracing::warn!(
                    "keyspace expiry notifications are OFF and muster may not turn them on ({why}); \
                     an agent that dies without a word is noticed only by the resync every {:?} \
                     (set `notify-keyspace-events Ex` in redis.conf)",
                    cfg.resync_period
                ),
                ExpiryNotifications::Unknown => {}
            }
        }
        // Redis answers: start the hold (if it was away) before reading keys.
        let hold_until = inner.reached_redis();
        if let Err(e) = resync(&inner, &mut conn).await {
            // Wait before connecting again: an error that comes back on every
            // try must cost one WARN per poll period, not a busy loop.
            tracing::warn!(error = %e, "agent watcher resync failed; trying again in {:?}", cfg.poll_period);
            inner.redis_link.failed(&e.to_string());
            drain_tracked(&mut track_rx);
            tokio::time::sleep(cfg.poll_period).await;
            continue;
        }
        if warned_down {
            tracing::info!("agent watcher subscribed again");
        }
        if let Err(e) = own {
            tracing::warn!(pattern = %own_pattern, error = %e,
                "cannot PSUBSCRIBE the agents' own event channels; only the resync every {:?} sees \
                 protocol-v2 agents' changes (grant the muster user +psubscribe and &{own_pattern})",
                cfg.resync_period);
        }
        inner.subscribed.send_replace(true);
        inner.redis_link.connected();
        tracing::debug!(channel = %own_pattern, legacy = %events, expiry = %expired_channel, "agent watcher subscribed");

        // 2. Follow events until the subscription drops.
        let mut stream = pubsub.into_on_message();
        let resync_every = if matches!(expiry, ExpiryNotifications::Unavailable(_)) {
            cfg.resync_period
                .min(cfg.poll_period.max(Duration::from_secs(1)) * 5)
        } else {
            cfg.resync_period
        };
        let mut next_resync = Instant::now() + resync_every;
        // When the hold after an outage ends, read every key once more: an
        // agent that did not re-assert in time is then not ready.
        if let Some(until) = hold_until {
            next_resync = next_resync.min(until + Duration::from_millis(10));
        }
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    // Events on an agent's own channel are applied at once
                    // (see `own_event`). Events on the shared channel are
                    // hints (see `event_of`): the agents they name are read
                    // from their keys, one MGET for every message already
                    // waiting, so a burst costs one round trip.
                    let mut named = BTreeSet::new();
                    let mut next = Some(msg);
                    let mut taken = 0;
                    while let Some(msg) = next.take() {
                        taken += 1;
                        let channel = msg.get_channel_name();
                        if channel == events {
                            if let Some(event) = inner.event_of(msg.get_payload_bytes(), Source::Event) {
                                named.insert(event.agent);
                            }
                        } else if channel == expired_channel {
                            if let Some(agent) = inner.agent_of_key(msg.get_payload_bytes()) {
                                inner.apply(&agent, Readiness::NotReady { reason: EXPIRED.to_string(), since_ms: Some(now_ms()) }, Source::Expiry);
                            }
                        } else if let Some(agent) = channel.strip_prefix(&own_prefix) {
                            inner.own_event(agent, msg.get_payload_bytes());
                        }
                        // Bounded, so a steady flood cannot starve the resync.
                        if named.len() < 500 && taken < 5000 {
                            next = stream.next().now_or_never().flatten();
                        }
                    }
                    let named: Vec<String> = named.into_iter().collect();
                    if let Err(e) = read_agents(&inner, &mut conn, &named, Source::Event).await {
                        tracing::debug!(error = %e, agents = named.len(), "read after events failed; the next resync reads them");
                    }
                }
                Some((agent, source)) = track_rx.recv() => {
                    if let Err(e) = read_agents(&inner, &mut conn, std::slice::from_ref(&agent), source).await {
                        tracing::debug!(error = %e, agent, "read of an agent failed; the next resync reads it");
                    }
                }
                _ = tokio::time::sleep_until(next_resync.into()) => {
                    next_resync = Instant::now() + resync_every;
                    if let Err(e) = resync(&inner, &mut conn).await {
                        tracing::warn!(error = %e, "agent watcher resync failed");
                    }
                }
            }
        }
        inner.subscribed.send_replace(false);
        inner.lost_redis();
        inner
            .redis_link
            .failed("the subscription dropped (Redis closed the connection)");
        tracing::warn!(
            "agent watcher lost its Redis subscription; reading keys every {:?} and re-subscribing",
            cfg.poll_period
        );
        warned_down = true;
    }
}

fn drain_tracked(rx: &mut mpsc::UnboundedReceiver<(String, Source)>) {
    while rx.try_recv().is_ok() {}
}
