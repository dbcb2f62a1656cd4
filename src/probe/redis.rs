//! Redis readiness: connect (redis:// or rediss://, user/password/ACL, db),
//! PING, not loading (`INFO persistence`), optional role, replication link and
//! key checks — all in one pipelined round trip over a multiplexed connection
//! that is kept between runs and re-made after any failure.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, Value};

use super::address::map_url;
use super::{dns_reason, Failure, Probe, ProbeContext, ProbeError, ProbeFuture, ProbeOutcome};
use crate::compose::xmuster::RedisProbeSpec;
use crate::tls::ClientIdentity;
use crate::url::split_url;

const KIND: &str = "redis";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisRole {
    Master,
    Replica,
}

pub struct RedisProbe {
    client: redis::Client,
    target: String,
    host: String,
    timeout: Duration,
    ping: bool,
    not_loading: bool,
    role: Option<RedisRole>,
    replication_link_up: bool,
    key_exists: Option<String>,
    /// The connection in use and its generation in [`POOL`].
    conn: Option<(u64, MultiplexedConnection)>,
    /// Pool key: the full URL (with credentials and db) and the timeout.
    key: String,
    /// `key` and the runtime the connection in use belongs to.
    pool_key: String,
    /// The checks as one pipeline, built once.
    pipe: redis::Pipeline,
}

/// Probes of the same Redis URL share one multiplexed connection (requests are
/// pipelined on it), so a thousand probes of one server cost one socket. An
/// entry is replaced when a probe sees its connection break or time out.
static POOL: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, (u64, MultiplexedConnection)>>,
> = std::sync::LazyLock::new(Default::default);
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Which runtime a connection made here belongs to. The connection's driver
/// task runs on the runtime that made it, so probes on another runtime (the
/// probe runner's own thread, see `supervisor::runner`) share connections
/// only with probes on theirs: a request then never wakes another runtime's
/// threads, and a runtime that ends takes only its own connections along.
fn runtime_tag() -> String {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::CurrentThread) => format!("{:?}", std::thread::current().id()),
        _ => "shared".to_string(),
    }
}

fn pool(
) -> std::sync::MutexGuard<'static, std::collections::HashMap<String, (u64, MultiplexedConnection)>>
{
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedisProbe {
    pub fn new(
        spec: &RedisProbeSpec,
        ctx: &ProbeContext,
        timeout: Duration,
    ) -> Result<Self, ProbeError> {
        let parts = split_url(&spec.url).map_err(|e| ProbeError::field(KIND, "url", e))?;
        if parts.scheme != "redis" && parts.scheme != "rediss" {
            return Err(ProbeError::field(
                KIND,
                "url",
                format!("scheme {:?} is not redis:// or rediss://", parts.scheme),
            ));
        }
        let url = map_url(ctx.address_mode, &ctx.published, &spec.url, 6379)
            .map_err(|e| ProbeError::field(KIND, "url", e))?;
        let host = split_url(&url)
            .map(|p| p.host.to_string())
            .unwrap_or_default();
        let ca = match &spec.ca_file {
            None => None,
            Some(_) if parts.scheme != "rediss" => {
                return Err(ProbeError::field(
                    KIND,
                    "ca_file",
                    "ca_file is for rediss:// URLs; this one is redis://",
                ))
            }
            Some(path) => Some(
                crate::tls::read_ca_file(std::path::Path::new(path))
                    .map_err(|e| ProbeError::field(KIND, "ca_file", e))?,
            ),
        };
        let identity =
            ClientIdentity::from_fields(spec.cert_file.as_deref(), spec.key_file.as_deref())
                .map_err(|(field, e)| ProbeError::field(KIND, field, e))?;
        if identity.is_some() && parts.scheme != "rediss" {
            return Err(ProbeError::field(
                KIND,
                "cert_file",
                "cert_file is for rediss:// URLs; this one is redis://",
            ));
        }
        let opened = if ca.is_none() && identity.is_none() {
            redis::Client::open(url.as_str())
        } else {
            redis::Client::build_with_tls(
                url.as_str(),
                redis::TlsCertificates {
                    client_tls: identity.as_ref().map(|id| redis::ClientTlsConfig {
                        client_cert: id.cert_pem.clone(),
                        client_key: id.key_pem.clone(),
                    }),
                    root_cert: ca.clone(),
                },
            )
        };
        let client = opened.map_err(|e| {
            ProbeError::field(
                KIND,
                "url",
                format!("{}: {e}", crate::url::redact_url(&spec.url)),
            )
        })?;
        let (mut ping, mut not_loading) = (spec.require.is_empty(), spec.require.is_empty());
        for r in &spec.require {
            match r.as_str() {
                "ping" => ping = true,
                "not_loading" => not_loading = true,
                other => {
                    return Err(ProbeError::field(
                        KIND,
                        "require",
                        format!("unknown check {other:?} (expected ping, not_loading)"),
                    ))
                }
            }
        }
        let role = match spec.role.as_deref() {
            None => None,
            Some("master") | Some("primary") => Some(RedisRole::Master),
            Some("replica") | Some("slave") => Some(RedisRole::Replica),
            Some(other) => {
                return Err(ProbeError::field(
                    KIND,
                    "role",
                    format!("{other:?} is not master or replica"),
                ))
            }
        };
        if spec.replication_link_up && role == Some(RedisRole::Master) {
            return Err(ProbeError::field(
                KIND,
                "replication_link_up",
                "only a replica has a link to a master (role is master)",
            ));
        }
        let mut pipe = redis::pipe();
        if ping {
            pipe.cmd("PING");
        }
        if not_loading {
            pipe.cmd("INFO").arg("persistence");
        }
        if role.is_some() || spec.replication_link_up {
            pipe.cmd("INFO").arg("replication");
        }
        if let Some(key) = &spec.key_exists {
            pipe.cmd("EXISTS").arg(key);
        }
        Ok(RedisProbe {
            pipe,
            client,
            target: crate::url::redact_url(&url),
            host,
            timeout,
            ping,
            not_loading,
            role,
            replication_link_up: spec.replication_link_up,
            key_exists: spec.key_exists.clone(),
            conn: None,
            // Probes share a connection only when they would make the same one.
            key: format!(
                "{url}#{}#{}#{}",
                timeout.as_millis(),
                spec.ca_file.as_deref().unwrap_or(""),
                identity
                    .as_ref()
                    .map(ClientIdentity::key)
                    .unwrap_or_default()
            ),
            pool_key: String::new(),
        })
    }

    async fn run(&mut self) -> Result<String, Failure> {
        let reused = self.conn.is_some();
        match self.run_on_connection().await {
            // A kept connection the server closed meanwhile (restart): one fresh try.
            Err(f) if reused && f.retryable => self.run_on_connection().await,
            other => other,
        }
    }

    async fn run_on_connection(&mut self) -> Result<String, Failure> {
        if self.conn.is_none() {
            self.pool_key = format!("{}@{}", self.key, runtime_tag());
            self.conn = pool().get(&self.pool_key).cloned();
        }
        let (generation, conn) = match self.conn.clone() {
            Some(entry) => entry,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| Failure::from_redis(&e, &self.host, self.timeout, "connect"))?;
                let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                pool().insert(self.pool_key.clone(), (generation, conn.clone()));
                self.conn = Some((generation, conn.clone()));
                (generation, conn)
            }
        };
        let result = self.checks(conn).await;
        if let Err(f) = &result {
            // Re-made on the next run: a dead or confused connection never lingers.
            self.conn = None;
            if f.retryable || f.timeout {
                let mut pool = pool();
                if pool
                    .get(&self.pool_key)
                    .is_some_and(|(g, _)| *g == generation)
                {
                    pool.remove(&self.pool_key);
                }
            }
        }
        result
    }

    async fn checks(&self, mut conn: MultiplexedConnection) -> Result<String, Failure> {
        let want_replication = self.role.is_some() || self.replication_link_up;
        let values: Vec<Value> = match self.pipe.query_async(&mut conn).await {
            Ok(values) => values,
            Err(e) if e.code() == Some("LOADING") => {
                // PING is refused while loading; INFO still answers, with progress.
                let info: Result<String, _> = redis::cmd("INFO")
                    .arg("persistence")
                    .query_async(&mut conn)
                    .await;
                let detail = info.ok().map(|i| loading_detail(&i)).unwrap_or_default();
                return Err(Failure::fail(format!(
                    "loading: Redis is loading the dataset in memory{detail}"
                )));
            }
            Err(e) => {
                let mut f = Failure::from_redis(&e, &self.host, self.timeout, "query");
                f.retryable =
                    e.is_connection_dropped() || e.is_io_error() || e.is_unrecoverable_error();
                return Err(f);
            }
        };
        let mut values = values.into_iter();
        let mut detail: Vec<std::borrow::Cow<'static, str>> = Vec::new();
        if self.ping {
            let v = values.next().unwrap_or(Value::Nil);
            if value_text(Some(&v)) != "PONG" {
                let pong: String = redis::from_redis_value(v).unwrap_or_default();
                return Err(Failure::fail(format!("PING answered {pong:?}, not PONG")));
            }
            detail.push("PONG".into());
        }
        if self.not_loading {
            let value = values.next();
            let info = value_text(value.as_ref());
            if info_field(&info, "loading") == Some("1") {
                return Err(Failure::fail(format!(
                    "loading: Redis is loading the dataset in memory{}",
                    loading_detail(&info)
                )));
            }
            if info_field(&info, "async_loading") == Some("1") {
                return Err(Failure::fail(
                    "loading: Redis is loading a replication stream (async_loading:1)",
                ));
            }
            detail.push("not loading".into());
        }
        if want_replication {
            let value = values.next();
            let info = value_text(value.as_ref());
            let role = info_field(&info, "role").unwrap_or("unknown").to_string();
            let actual = match role.as_str() {
                "master" => Some(RedisRole::Master),
                "slave" | "replica" => Some(RedisRole::Replica),
                _ => None,
            };
            if let Some(want) = self.role {
                if actual != Some(want) {
                    let want = if want == RedisRole::Master {
                        "master"
                    } else {
                        "replica"
                    };
                    return Err(Failure::fail(format!("role is {role}, want {want}")));
                }
            }
            if self.replication_link_up {
                if actual != Some(RedisRole::Replica) {
                    return Err(Failure::fail(format!(
                        "replication link: role is {role}, not a replica"
                    )));
                }
                let link = info_field(&info, "master_link_status").unwrap_or("unknown");
                if link != "up" {
                    let sync = if info_field(&info, "master_sync_in_progress") == Some("1") {
                        " (sync in progress)"
                    } else {
                        ""
                    };
                    return Err(Failure::fail(format!(
                        "replication link to master is {link}{sync}"
                    )));
                }
                detail.push("link up".into());
            }
            detail.push(format!("role {role}").into());
        }
        if let Some(key) = &self.key_exists {
            let n: i64 = values
                .next()
                .and_then(|v| redis::from_redis_value(v).ok())
                .unwrap_or(0);
            if n == 0 {
                return Err(Failure::fail(format!("key {key:?} does not exist")));
            }
            detail.push(format!("key {key} exists").into());
        }
        Ok(detail.join(", "))
    }
}

impl Probe for RedisProbe {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn target(&self) -> String {
        self.target.clone()
    }

    fn check(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let start = Instant::now();
            match self.run().await {
                Ok(detail) => ProbeOutcome::ok(start.elapsed(), detail),
                Err(f) => f.outcome(start.elapsed()),
            }
        })
    }
}

impl Failure {
    fn from_redis(e: &RedisError, host: &str, timeout: Duration, what: &str) -> Failure {
        let text = e.to_string();
        let lower = text.to_lowercase();
        if e.kind() == ErrorKind::AuthenticationFailed
            || matches!(
                e.code(),
                Some("WRONGPASS") | Some("NOAUTH") | Some("NOPERM")
            )
            || lower.contains("wrongpass")
            || lower.contains("noauth")
            || lower.contains("invalid password")
            || lower.contains("invalid username-password")
        {
            return Failure::fail(format!("auth failed: {}", strip_secrets(&text)));
        }
        if e.code() == Some("LOADING") {
            return Failure::fail("loading: Redis is loading the dataset in memory");
        }
        if e.is_timeout() || lower.contains("timed out") || lower.contains("timeout") {
            return Failure::timed_out(format!(
                "{what} to {host} timed out after {}",
                crate::duration::format(timeout)
            ));
        }
        if e.is_connection_refusal() || lower.contains("connection refused") {
            return Failure::fail(format!("connection refused by {host}"));
        }
        if let Some(reason) = dns_reason(&lower, host) {
            return Failure::fail(reason);
        }
        if lower.contains("tls") || lower.contains("certificate") || lower.contains("handshake") {
            return Failure::fail(format!("TLS: {text}"));
        }
        Failure::fail(format!("{what} failed: {text}"))
    }
}

fn strip_secrets(text: &str) -> String {
    // Redis error texts never echo the password; only the redis crate's
    // URL-carrying messages could, so redact anything that looks like a URL.
    text.split_whitespace()
        .map(|w| {
            if w.contains("://") {
                crate::url::redact_url(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of a string reply, borrowed when it is UTF-8 (INFO answers are
/// read on every run: no copy).
fn value_text(v: Option<&Value>) -> std::borrow::Cow<'_, str> {
    match v {
        Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes),
        Some(Value::SimpleString(s)) => s.as_str().into(),
        Some(Value::VerbatimString { text, .. }) => text.as_str().into(),
        Some(Value::Okay) => "OK".into(),
        _ => "".into(),
    }
}

/// The value of `field:` in INFO output.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == field).then(|| v.trim())
    })
}

fn loading_detail(info: &str) -> String {
    match info_field(info, "loading_loaded_perc") {
        Some(p) => format!(" ({p}% loaded)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::xmuster::RedisProbeSpec;

    fn spec(url: &str) -> RedisProbeSpec {
        RedisProbeSpec {
            url: url.into(),
            require: vec![],
            role: None,
            replication_link_up: false,
            key_exists: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }

    #[test]
    fn parses_info_fields() {
        let info = "# Persistence\r\nloading:1\r\nloading_loaded_perc:42.50\r\n";
        assert_eq!(info_field(info, "loading"), Some("1"));
        assert_eq!(loading_detail(info), " (42.50% loaded)");
        assert_eq!(info_field(info, "nope"), None);
    }

    #[test]
    fn refuses_bad_fields() {
        let ctx = ProbeContext::default();
        let t = Duration::from_secs(1);
        let e = RedisProbe::new(&spec("http://x:1"), &ctx, t)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("url") && e.contains("redis://"), "{e}");
        let mut s = spec("redis://x:1");
        s.require = vec!["pong".into()];
        let e = RedisProbe::new(&s, &ctx, t).err().unwrap().to_string();
        assert!(e.contains("require") && e.contains("pong"), "{e}");
        let mut s = spec("redis://x:1");
        s.role = Some("leader".into());
        assert!(RedisProbe::new(&s, &ctx, t)
            .err()
            .unwrap()
            .to_string()
            .contains("role"));
        let p = RedisProbe::new(&spec("redis://u:secret@x:1/2"), &ctx, t).unwrap();
        assert!(!p.target().contains("secret"));
    }
}
