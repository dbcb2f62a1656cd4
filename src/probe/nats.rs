//! NATS readiness: connect (nats:// or tls://, token, user/password, nkey,
//! creds file) and a flush round trip; optionally JetStream enabled with the
//! account reachable, and a named stream exists. Or, with `monitor_url`, the
//! server's `/healthz?js-enabled-only=true` (plain /healthz fails during
//! JetStream recovery and causes restart loops).

use std::time::{Duration, Instant};

use async_nats::{ConnectErrorKind, ConnectOptions};
use hyper::Method;

use super::address::map_url;
use super::http::{HttpConn, HttpTarget};
use super::{Failure, Probe, ProbeContext, ProbeError, ProbeFuture, ProbeOutcome};
use crate::compose::xmuster::NatsProbeSpec;
use crate::tls::ClientIdentity;
use crate::url::split_url;

const KIND: &str = "nats";

pub struct NatsProbe {
    /// Server URL without credentials.
    url: Option<String>,
    /// `user:pass@` or `token@` from the URL.
    userinfo: Option<String>,
    host: String,
    monitor: Option<HttpTarget>,
    monitor_conn: HttpConn,
    creds: Option<String>,
    nkey: Option<String>,
    /// CA certificates to trust for `tls://` instead of the system's.
    ca_file: Option<std::path::PathBuf>,
    /// The client certificate for `tls://` (mutual TLS).
    identity: Option<ClientIdentity>,
    jetstream: bool,
    stream: Option<String>,
    timeout: Duration,
    client: Option<async_nats::Client>,
    target: String,
}

impl NatsProbe {
    pub fn new(
        spec: &NatsProbeSpec,
        ctx: &ProbeContext,
        timeout: Duration,
    ) -> Result<Self, ProbeError> {
        if spec.url.is_none() && spec.monitor_url.is_none() {
            return Err(ProbeError::field(
                KIND,
                "url",
                "a nats probe needs `url` or `monitor_url`",
            ));
        }
        let mut host = String::new();
        let mut userinfo = None;
        let url = match &spec.url {
            None => None,
            Some(url) => {
                let parts = split_url(url).map_err(|e| ProbeError::field(KIND, "url", e))?;
                if !matches!(parts.scheme, "nats" | "tls") {
                    return Err(ProbeError::field(
                        KIND,
                        "url",
                        format!("scheme {:?} is not nats:// or tls://", parts.scheme),
                    ));
                }
                let mapped = map_url(ctx.address_mode, &ctx.published, url, 4222)
                    .map_err(|e| ProbeError::field(KIND, "url", e))?;
                let m = split_url(&mapped).map_err(|e| ProbeError::field(KIND, "url", e))?;
                host = m.host.to_string();
                userinfo = m.userinfo.map(str::to_string);
                let bare = match m.port {
                    Some(port) => format!("{}://{}:{port}", m.scheme, bracket(m.host)),
                    None => format!("{}://{}", m.scheme, bracket(m.host)),
                };
                Some(bare)
            }
        };
        if spec.creds.is_some() && spec.nkey.is_some() {
            return Err(ProbeError::field(
                KIND,
                "creds",
                "give either creds or nkey, not both",
            ));
        }
        if (spec.jetstream || spec.stream.is_some() || spec.creds.is_some() || spec.nkey.is_some())
            && url.is_none()
        {
            return Err(ProbeError::field(
                KIND,
                "url",
                "jetstream / stream / creds / nkey need `url` (the monitoring endpoint checks JetStream by itself)",
            ));
        }
        let ca_file = spec.ca_file.as_deref().map(std::path::Path::new);
        let tls_url = url.as_deref().is_some_and(|u| u.starts_with("tls://"));
        let https_monitor = spec
            .monitor_url
            .as_deref()
            .is_some_and(|m| m.starts_with("https://"));
        let identity =
            ClientIdentity::from_fields(spec.cert_file.as_deref(), spec.key_file.as_deref())
                .map_err(|(field, e)| ProbeError::field(KIND, field, e))?;
        if identity.is_some() && !tls_url && !https_monitor {
            return Err(ProbeError::field(
                KIND,
                "cert_file",
                "cert_file is for a tls:// url or an https:// monitor_url",
            ));
        }
        if let Some(path) = ca_file {
            if !tls_url && !https_monitor {
                return Err(ProbeError::field(
                    KIND,
                    "ca_file",
                    "ca_file is for a tls:// url or an https:// monitor_url",
                ));
            }
            if !https_monitor {
                // async-nats reads it when it connects; a bad file is a config error now.
                crate::tls::read_ca_file(path)
                    .map_err(|e| ProbeError::field(KIND, "ca_file", e))?;
            }
        }
        let monitor = match &spec.monitor_url {
            None => None,
            Some(m) => {
                let base = m.trim_end_matches('/');
                let full = format!("{base}/healthz?js-enabled-only=true");
                let ca = ca_file.filter(|_| https_monitor);
                let id = identity.as_ref().filter(|_| https_monitor);
                Some(
                    HttpTarget::parse_with_tls(&full, ctx, ca, id).map_err(|(field, e)| {
                        let field = if field == "url" { "monitor_url" } else { field };
                        ProbeError::field(KIND, field, e)
                    })?,
                )
            }
        };
        let shown = spec.url.as_deref().map(crate::url::redact_url);
        let target = match (&shown, &monitor) {
            (Some(u), Some(m)) => format!("{u} + {}", m.url),
            (Some(u), None) => u.clone(),
            (None, Some(m)) => m.url.clone(),
            (None, None) => String::new(),
        };
        Ok(NatsProbe {
            url,
            userinfo,
            host,
            monitor,
            monitor_conn: HttpConn::new(),
            creds: spec.creds.clone(),
            nkey: spec.nkey.clone(),
            ca_file: ca_file
                .filter(|_| tls_url)
                .map(std::path::Path::to_path_buf),
            identity: identity.filter(|_| tls_url),
            jetstream: spec.jetstream || spec.stream.is_some(),
            stream: spec.stream.clone(),
            timeout,
            client: None,
            target,
        })
    }

    async fn connect(&self, url: &str) -> Result<async_nats::Client, Failure> {
        let mut options = ConnectOptions::new()
            .name("muster-probe")
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .ignore_discovered_servers()
            .max_reconnects(Some(1));
        if let Some(info) = self.userinfo.as_deref() {
            options = match info.split_once(':') {
                Some((user, pass)) => options.user_and_password(user.to_string(), pass.to_string()),
                None => options.token(info.to_string()),
            };
        }
        if let Some(seed) = &self.nkey {
            options = options.nkey(seed.clone());
        }
        if let Some(path) = &self.creds {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| Failure::fail(format!("cannot read creds file {path:?}: {e}")))?;
        }
        if url.starts_with("tls://") {
            options = options.require_tls(true);
            if let Some(ca) = &self.ca_file {
                options = options.add_root_certificates(ca.clone());
            }
            if let Some(id) = &self.identity {
                options = options.add_client_certificate(id.cert_file.clone(), id.key_file.clone());
            }
        }
        options.connect(url).await.map_err(|e| {
            let host = &self.host;
            Failure::fail(match e.kind() {
                ConnectErrorKind::Dns => format!("DNS: cannot resolve host {host:?}"),
                ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                    format!("auth failed: {e}")
                }
                ConnectErrorKind::TimedOut => {
                    return Failure::timed_out(format!(
                        "connect to {host} timed out after {}",
                        crate::duration::format(self.timeout)
                    ))
                }
                ConnectErrorKind::Tls => format!("TLS: {e}"),
                _ => {
                    let text = e.to_string();
                    if text.to_lowercase().contains("refused") {
                        format!("connection refused by {host}")
                    } else if let Some(dns) = super::dns_reason(&text.to_lowercase(), host) {
                        dns
                    } else {
                        format!("connect to {host} failed: {text}")
                    }
                }
            })
        })
    }

    async fn client_checks(&mut self, url: &str) -> Result<String, Failure> {
        let client = match self.client.clone() {
            Some(c) => c,
            None => {
                let c = self.connect(url).await?;
                self.client = Some(c.clone());
                c
            }
        };
        client
            .flush()
            .await
            .map_err(|e| Failure::fail(format!("flush round trip failed: {e}")))?;
        let mut detail = vec!["flush ok".to_string()];
        if self.jetstream {
            // The JetStream API directly (JSON), so any server version answers.
            let info = self.js_request(&client, "$JS.API.INFO").await?;
            if let Some(err) = js_error(&info) {
                return Err(Failure::fail(format!(
                    "JetStream account info failed: {err}"
                )));
            }
            let streams = info.get("streams").and_then(|v| v.as_u64()).unwrap_or(0);
            detail.push(format!("JetStream ok ({streams} streams)"));
            if let Some(name) = &self.stream {
                let info = self
                    .js_request(&client, &format!("$JS.API.STREAM.INFO.{name}"))
                    .await?;
                if let Some(err) = js_error(&info) {
                    let code = info.pointer("/error/err_code").and_then(|v| v.as_u64());
                    return Err(Failure::fail(
                        if code == Some(10059) || err.contains("not found") {
                            format!("stream {name:?} does not exist")
                        } else {
                            format!("stream {name:?}: {err}")
                        },
                    ));
                }
                detail.push(format!("stream {name} exists"));
            }
        }
        Ok(detail.join(", "))
    }

    async fn js_request(
        &self,
        client: &async_nats::Client,
        subject: &str,
    ) -> Result<serde_json::Value, Failure> {
        let request = client.request(subject.to_string(), "".into());
        let reply = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => return Err(Failure::timed_out("JetStream API did not answer in time")),
            Ok(Err(e)) => {
                use async_nats::RequestErrorKind;
                return Err(Failure::fail(match e.kind() {
                    RequestErrorKind::NoResponders => {
                        "JetStream is not enabled on the server (required by the probe): no responders".to_string()
                    }
                    RequestErrorKind::TimedOut => "JetStream API request timed out".to_string(),
                    _ => format!("JetStream API request failed: {e}"),
                }));
            }
            Ok(Ok(reply)) => reply,
        };
        serde_json::from_slice(&reply.payload).map_err(|e| {
            Failure::fail(format!(
                "JetStream API answered something that is not JSON: {e}"
            ))
        })
    }

    async fn run(&mut self) -> Result<String, Failure> {
        let mut detail = Vec::new();
        if let Some(monitor) = self.monitor.clone() {
            let resp = self
                .monitor_conn
                .request(&monitor, &Method::GET, &[], self.timeout, true)
                .await?;
            let body = String::from_utf8_lossy(&resp.body);
            if resp.status.as_u16() != 200 {
                return Err(Failure::fail(format!(
                    "healthz HTTP {}: {}",
                    resp.status.as_u16(),
                    super::tail(&body, 200)
                )));
            }
            detail.push("healthz ok".to_string());
        }
        if let Some(url) = self.url.clone() {
            match self.client_checks(&url).await {
                Ok(d) => detail.push(d),
                Err(f) => {
                    // Re-made on the next run rather than left reconnecting.
                    self.client = None;
                    return Err(f);
                }
            }
        }
        Ok(detail.join(", "))
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The `error.description` of a JetStream API answer, if it is an error.
fn js_error(v: &serde_json::Value) -> Option<String> {
    let err = v.get("error")?;
    let code = err.get("code").and_then(|c| c.as_u64()).unwrap_or(0);
    let text = err
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or("error")
        .to_string();
    if code == 503 {
        return Some(format!("JetStream is not enabled for the account ({text})"));
    }
    Some(text)
}

impl Probe for NatsProbe {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn target(&self) -> String {
        self.target.clone()
    }

    fn check(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let start = Instant::now();
            let timeout = self.timeout;
            let result = match tokio::time::timeout(timeout, self.run()).await {
                Ok(r) => r,
                Err(_) => {
                    self.client = None;
                    self.monitor_conn = HttpConn::new();
                    Err(Failure::timed_out(format!(
                        "no answer from {} within {}",
                        self.target,
                        crate::duration::format(timeout)
                    )))
                }
            };
            match result {
                Ok(detail) => ProbeOutcome::ok(start.elapsed(), detail),
                Err(f) => f.outcome(start.elapsed()),
            }
        })
    }
}
