//! The client agents link: `Client::connect(url)`, `mark_*`, a heartbeat that
//! keeps the key alive (and re-asserts it after Redis restarts), and a guard
//! that marks the agents `stopping` on SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::protocol::{
    agent_events_channel, hostname, notready_key, now_ms, ready_key, validate_meta, validate_name,
    validate_namespace, Event, Meta, NotReadyValue, SignalValue, Status, ASSERT_FUNCTION,
    ASSERT_SCRIPT, DEFAULT_NAMESPACE, DEFAULT_NOTREADY_TTL, DEFAULT_TTL, NOT_READY_FUNCTION,
    NOT_READY_SCRIPT,
};
use crate::read::{read_signal, Readiness};
use crate::SignalError;

/// Re-exported from [`crate::protocol`], where it lives so that `read` need
/// not depend on this module.
pub use crate::protocol::open_client;

/// How a [`Client`] behaves. `Default` gives the protocol defaults.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Key prefix (one per stack).
    pub namespace: String,
    /// TTL of the ready key.
    pub ttl: Duration,
    /// Heartbeat period (default TTL/2).
    pub heartbeat: Option<Duration>,
    /// How long the not-ready reason is kept.
    pub notready_ttl: Duration,
    /// Per connection attempt.
    pub connect_timeout: Duration,
    /// Per command.
    pub response_timeout: Duration,
    /// Reconnect attempts per outage before a command fails (the heartbeat keeps trying).
    pub retries: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            namespace: DEFAULT_NAMESPACE.to_string(),
            ttl: DEFAULT_TTL,
            heartbeat: None,
            notready_ttl: DEFAULT_NOTREADY_TTL,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            retries: 4,
        }
    }
}

impl ClientOptions {
    pub fn heartbeat_period(&self) -> Duration {
        self.heartbeat
            .unwrap_or(self.ttl / 2)
            .max(Duration::from_millis(50))
    }
}

/// One write of the protocol: `FCALL` of muster's function (loaded by muster,
/// see [`crate::protocol::FUNCTION_LIBRARY`]), or `EVAL` of the same script
/// where the function is not there: Redis 6 has no functions, and before
/// muster first connects to a fresh Redis the library is not loaded yet.
struct Script {
    function: &'static str,
    script: &'static str,
    keys: [String; 2],
    args: (String, u64, String, String),
}

impl Script {
    /// The write of `value` (kept for `ttl`) and its `event` for one agent.
    fn new(
        (function, script): (&'static str, &'static str),
        namespace: &str,
        agent: &str,
        value: String,
        ttl: Duration,
        event: String,
    ) -> Script {
        Script {
            function,
            script,
            keys: [ready_key(namespace, agent), notready_key(namespace, agent)],
            args: (
                value,
                ttl.as_millis().max(1) as u64,
                agent_events_channel(namespace, agent),
                event,
            ),
        }
    }

    /// `FCALL function` or `EVAL script`, then the two keys and four arguments.
    fn command(&self, verb: &str, first: &str) -> redis::Cmd {
        let (value, ttl, channel, event) = &self.args;
        let mut cmd = redis::cmd(verb);
        cmd.arg(first)
            .arg(2)
            .arg(&self.keys)
            .arg(value)
            .arg(ttl)
            .arg(channel)
            .arg(event);
        cmd
    }

    async fn run<C: ConnectionLike + Send>(&self, conn: &mut C) -> Result<i64, SignalError> {
        use std::sync::atomic::Ordering;
        // Where FCALL found no function and EVAL worked, keep using EVAL: a
        // refused FCALL on every write would cost a round trip and an error
        // in Redis's stats each time. EVAL refused sends us back to FCALL.
        if PREFER_EVAL.load(Ordering::Relaxed) {
            match self.eval(conn).await {
                Err(e) if e.code() == Some("NOPERM") => PREFER_EVAL.store(false, Ordering::Relaxed),
                done => return done.map_err(SignalError::from),
            }
        }
        let missing = match self
            .command("FCALL", self.function)
            .query_async::<i64>(conn)
            .await
        {
            Ok(n) => return Ok(n),
            Err(e) if function_missing(&e) => e,
            Err(e) => return Err(e.into()),
        };
        match self.eval(conn).await {
            Ok(n) => {
                PREFER_EVAL.store(true, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) if e.code() == Some("NOPERM") => Err(SignalError::NoFunctions {
                fcall: missing,
                eval: e,
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn eval<C: ConnectionLike + Send>(&self, conn: &mut C) -> redis::RedisResult<i64> {
        self.command("EVAL", self.script)
            .query_async::<i64>(conn)
            .await
    }
}

/// Set once `FCALL` found no function and `EVAL` worked (Redis 6, or
/// muster's functions not loaded): later writes of this process go straight
/// to `EVAL` until one is refused.
static PREFER_EVAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `FCALL` failed because the function is not there (not loaded, or no
/// functions at all before Redis 7) or this user may not run `FCALL`; not
/// when the call itself failed (a key this user may not touch, a wrong type).
fn function_missing(e: &redis::RedisError) -> bool {
    let detail = e.detail().unwrap_or_default().to_ascii_lowercase();
    match e.code() {
        Some("NOPERM") => detail.contains("'fcall'"),
        Some("ERR") => detail.contains("function not found") || detail.contains("unknown command"),
        _ => false,
    }
}

/// Sets a starting/ready/stopping value (see [`ASSERT_SCRIPT`]). Returns true
/// when the value changed (and was published), false when only the TTL was refreshed.
pub async fn assert_value<C: ConnectionLike + Send>(
    conn: &mut C,
    namespace: &str,
    agent: &str,
    value: &SignalValue,
    ttl: Duration,
) -> Result<bool, SignalError> {
    validate_name(agent)?;
    validate_meta(agent, &value.meta)?;
    let json = serde_json::to_string(value).unwrap_or_default();
    let event = serde_json::to_string(&Event::from_value(agent, value, ttl)).unwrap_or_default();
    let write = Script::new(
        (ASSERT_FUNCTION, ASSERT_SCRIPT),
        namespace,
        agent,
        json,
        ttl,
        event,
    );
    Ok(write.run(conn).await? == 1)
}

/// Deletes the ready key and stores the reason (see [`NOT_READY_SCRIPT`]).
/// Returns true when it published an event.
pub async fn set_not_ready<C: ConnectionLike + Send>(
    conn: &mut C,
    namespace: &str,
    agent: &str,
    value: &NotReadyValue,
    reason_ttl: Duration,
) -> Result<bool, SignalError> {
    validate_name(agent)?;
    let json = serde_json::to_string(value).unwrap_or_default();
    let event = serde_json::to_string(&Event::from_not_ready(agent, value)).unwrap_or_default();
    let write = Script::new(
        (NOT_READY_FUNCTION, NOT_READY_SCRIPT),
        namespace,
        agent,
        json,
        reason_ttl,
        event,
    );
    Ok(write.run(conn).await? == 1)
}

/// `PEXPIRE` the ready key: true when it still existed (a shell heartbeat).
pub async fn refresh<C: ConnectionLike + Send>(
    conn: &mut C,
    namespace: &str,
    agent: &str,
    ttl: Duration,
) -> Result<bool, SignalError> {
    validate_name(agent)?;
    let n: i64 = redis::cmd("PEXPIRE")
        .arg(ready_key(namespace, agent))
        .arg(ttl.as_millis().max(1) as u64)
        .query_async(conn)
        .await?;
    Ok(n == 1)
}

/// What this client last said about one agent; the heartbeat re-asserts it.
#[derive(Debug, Clone)]
enum Last {
    Up(SignalValue),
    Down(NotReadyValue),
}

struct Shared {
    conn: ConnectionManager,
    opts: ClientOptions,
    host: String,
    pid: u32,
    agents: Mutex<BTreeMap<String, Last>>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connection to Redis that sends ready signals for one or more agents and
/// keeps them alive. Cheap to clone; the heartbeat stops when the last clone drops.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    _heartbeat: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("namespace", &self.shared.opts.namespace)
            .field("ttl", &self.shared.opts.ttl)
            .finish()
    }
}

impl Client {
    /// Connects with the default options (namespace `muster`, TTL 30 s).
    /// AUTH and ACL users go in the URL: `redis://user:pass@host:6379/0`.
    pub async fn connect(url: &str) -> Result<Client, SignalError> {
        Self::connect_with(url, ClientOptions::default()).await
    }

    /// Connects (bounded retries: fails when Redis stays unreachable) and starts the heartbeat.
    pub async fn connect_with(url: &str, opts: ClientOptions) -> Result<Client, SignalError> {
        validate_namespace(&opts.namespace)?;
        let client = open_client(url)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(opts.retries)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(2))
            .set_connection_timeout(Some(opts.connect_timeout))
            .set_response_timeout(Some(opts.response_timeout));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let shared = Arc::new(Shared {
            conn,
            opts,
            host: hostname(),
            pid: std::process::id(),
            agents: Mutex::new(BTreeMap::new()),
        });
        let task = tokio::spawn(heartbeat_loop(shared.clone()));
        Ok(Client {
            shared,
            _heartbeat: Arc::new(AbortOnDrop(task)),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.shared.opts
    }

    /// The agent is ready. `meta` is at most 4 KiB as JSON.
    pub async fn mark_ready(&self, agent: &str, meta: &[(&str, &str)]) -> Result<(), SignalError> {
        let meta: Meta = meta
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        self.mark_ready_meta(agent, meta).await
    }

    /// [`Client::mark_ready`] with any JSON values in `meta`.
    pub async fn mark_ready_meta(&self, agent: &str, meta: Meta) -> Result<(), SignalError> {
        self.set_up(agent, Status::Ready, None, None, meta).await
    }

    /// The agent is starting; `progress` is shown by the supervisor. `extend`
    /// pushes the start deadline to now + extend (like sd_notify's
    /// EXTEND_TIMEOUT_USEC); `None` keeps the previous deadline.
    pub async fn mark_starting(
        &self,
        agent: &str,
        progress: &str,
        extend: Option<Duration>,
    ) -> Result<(), SignalError> {
        let deadline = extend.map(|d| now_ms() + d.as_millis() as u64);
        self.set_up(
            agent,
            Status::Starting,
            Some(progress.to_string()),
            deadline,
            Meta::new(),
        )
        .await
    }

    /// The agent is shutting down gracefully (not ready).
    pub async fn mark_stopping(&self, agent: &str) -> Result<(), SignalError> {
        self.set_up(agent, Status::Stopping, None, None, Meta::new())
            .await
    }

    /// The agent is not ready, and why.
    pub async fn mark_not_ready(&self, agent: &str, reason: &str) -> Result<(), SignalError> {
        validate_name(agent)?;
        let mut agents = self.shared.agents.lock().await;
        let since = match agents.get(agent) {
            Some(Last::Down(v)) if v.reason == reason => v.since,
            _ => now_ms(),
        };
        let value = NotReadyValue {
            reason: reason.to_string(),
            since,
            host: Some(self.shared.host.clone()),
            pid: Some(self.shared.pid),
        };
        // Recorded before the write: when Redis is away, the heartbeat
        // re-asserts what the agent said last, never the state before it
        // (an agent that said "not ready" during an outage must not come
        // back as ready).
        agents.insert(agent.to_string(), Last::Down(value.clone()));
        let mut conn = self.shared.conn.clone();
        let opts = &self.shared.opts;
        set_not_ready(&mut conn, &opts.namespace, agent, &value, opts.notready_ttl).await?;
        Ok(())
    }

    /// Reads an agent's current readiness from Redis.
    pub async fn read(&self, agent: &str) -> Result<Readiness, SignalError> {
        let mut conn = self.shared.conn.clone();
        read_signal(&mut conn, &self.shared.opts.namespace, agent).await
    }

    /// Runs one heartbeat round now; returns how many keys had to be re-asserted.
    pub async fn heartbeat_now(&self) -> Result<usize, SignalError> {
        heartbeat_once(&self.shared).await
    }

    /// Installs SIGTERM/SIGINT handlers: on a signal every agent of this client
    /// is marked `stopping` (not ready) at once. The process no longer exits
    /// on those signals by itself: await [`ShutdownGuard::signalled`], clean
    /// up, then call [`ShutdownGuard::finish`].
    pub fn shutdown_guard(&self) -> Result<ShutdownGuard, SignalError> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = watch::channel(None);
        let client = self.clone();
        let task = tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutting down: marking agents stopping");
            let names: Vec<String> = client.shared.agents.lock().await.keys().cloned().collect();
            for agent in names {
                if let Err(e) = client.mark_stopping(&agent).await {
                    tracing::warn!(agent = %agent, error = %e, "could not mark stopping");
                }
            }
            let _ = tx.send(Some(name));
        });
        Ok(ShutdownGuard {
            client: self.clone(),
            rx,
            _task: AbortOnDrop(task),
        })
    }

    async fn set_up(
        &self,
        agent: &str,
        status: Status,
        progress: Option<String>,
        deadline: Option<u64>,
        meta: Meta,
    ) -> Result<(), SignalError> {
        validate_name(agent)?;
        validate_meta(agent, &meta)?;
        let mut agents = self.shared.agents.lock().await;
        let (since, deadline) = match agents.get(agent) {
            Some(Last::Up(old)) if old.status == status => (old.since, deadline.or(old.deadline)),
            _ => (now_ms(), deadline),
        };
        let value = SignalValue {
            status,
            since,
            progress,
            deadline: if status == Status::Starting {
                deadline
            } else {
                None
            },
            host: Some(self.shared.host.clone()),
            pid: Some(self.shared.pid),
            meta,
        };
        // Recorded before the write, as in `mark_not_ready`.
        agents.insert(agent.to_string(), Last::Up(value.clone()));
        let mut conn = self.shared.conn.clone();
        let opts = &self.shared.opts;
        assert_value(&mut conn, &opts.namespace, agent, &value, opts.ttl).await?;
        Ok(())
    }
}

async fn heartbeat_once(shared: &Shared) -> Result<usize, SignalError> {
    let agents = shared.agents.lock().await;
    let mut conn = shared.conn.clone();
    let opts = &shared.opts;
    let mut changed = 0;
    for (agent, last) in agents.iter() {
        let did = match last {
            Last::Up(v) => assert_value(&mut conn, &opts.namespace, agent, v, opts.ttl).await?,
            Last::Down(v) => {
                set_not_ready(&mut conn, &opts.namespace, agent, v, opts.notready_ttl).await?
            }
        };
        if did {
            tracing::info!(agent = %agent, "re-asserted the ready signal (key was missing or changed)");
            changed += 1;
        }
    }
    Ok(changed)
}

/// Every TTL/2; after a failure every 250 ms until Redis answers again, then
/// the last state of every agent is re-asserted (a restarted Redis lost it).
async fn heartbeat_loop(shared: Arc<Shared>) {
    let period = shared.opts.heartbeat_period();
    let retry = Duration::from_millis(250).min(period);
    let mut failing = false;
    loop {
        tokio::time::sleep(if failing { retry } else { period }).await;
        match heartbeat_once(&shared).await {
            Ok(n) => {
                if failing {
                    tracing::info!(
                        reasserted = n,
                        "Redis reachable again; ready signals re-asserted"
                    );
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "heartbeat failed; retrying every {retry:?}");
                }
                failing = true;
            }
        }
    }
}

/// Returned by [`Client::shutdown_guard`].
pub struct ShutdownGuard {
    client: Client,
    rx: watch::Receiver<Option<&'static str>>,
    _task: AbortOnDrop,
}

impl ShutdownGuard {
    /// Resolves once SIGTERM or SIGINT arrived and every agent was marked
    /// `stopping`; returns the signal's name.
    pub async fn signalled(&mut self) -> &'static str {
        loop {
            if let Some(name) = *self.rx.borrow_and_update() {
                return name;
            }
            if self.rx.changed().await.is_err() {
                // The guard's task is gone (it cannot be while we hold it); never resolve.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The signal received so far, if any.
    pub fn received(&self) -> Option<&'static str> {
        *self.rx.borrow()
    }

    /// Marks every agent of the client not ready with `reason`.
    pub async fn finish(self, reason: &str) -> Result<(), SignalError> {
        let names: Vec<String> = self
            .client
            .shared
            .agents
            .lock()
            .await
            .keys()
            .cloned()
            .collect();
        for agent in names {
            self.client.mark_not_ready(&agent, reason).await?;
        }
        Ok(())
    }
}
