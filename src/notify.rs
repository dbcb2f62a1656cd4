//! Notifications about supervision: a restart, a service that turned
//! `failed` (and that muster will not heal by itself), and a recovery.
//!
//! Every notification is logged by the supervisor. When a webhook is
//! configured (`webhook_url` in config/muster.yaml, `--webhook-url`,
//! `MUSTER_WEBHOOK_URL`), it is also POSTed there as one JSON object
//! ([`Notification`]). Delivery runs on its own task behind a bounded queue:
//! supervision never waits for it. Each POST has a timeout and is retried
//! with a growing delay on connection errors, timeouts, 429 and 5xx answers;
//! a full queue drops the notification with a warning. A password in the URL
//! is sent as HTTP basic auth and never logged. `https://` webhooks verify
//! the server against the system's roots, or the CA certificates of
//! `webhook_ca_file` (a relay with the stack's own CA).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

use crate::link::{LinkReporter, LinkWatch};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::url::redact_url_path;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    /// A container of the service was restarted (by muster, the engine's
    /// restart policy, or someone else).
    Restart,
    /// The service is `failed` and muster will not restart it (budget
    /// exhausted, exited under restart policy `no`, restarts turned off).
    Failed,
    /// The service is ready again after a restart or a failure was notified.
    Recovered,
    /// One replica of several went down while the others serve: the service
    /// stays up, with fewer containers.
    Degraded,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Restart => "restart",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Recovered => "recovered",
            NotifyEvent::Degraded => "degraded",
        }
    }
}

/// Who restarted a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartBy {
    /// muster, because the service stayed unready or a liveness/startup probe gave up.
    Muster,
    /// muster, because a `depends_on` dependency with `restart: true` was restarted.
    Dependency,
    /// The engine, by the container's restart policy.
    Engine,
    /// Someone else (`docker restart`, `docker start`).
    External,
}

impl RestartBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartBy::Muster => "muster",
            RestartBy::Dependency => "dependency",
            RestartBy::Engine => "engine",
            RestartBy::External => "external",
        }
    }
}

/// The restart budget at the time of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetNote {
    /// Restarts muster made within the window.
    pub used: u32,
    pub limit: u32,
    pub window_s: u64,
}

/// The JSON body POSTed to the webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub event: NotifyEvent,
    pub project: String,
    pub service: String,
    /// Why (the probe's reason, the exit code, the dependency).
    pub reason: String,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// Container names.
    pub containers: Vec<String>,
    /// For `restart`: who restarted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<RestartBy>,
    /// For a restart by muster: its number within the budget window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// For a restart by muster: the backoff it waited first, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// Restarts of the service seen so far (all kinds).
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetNote>,
    /// For a restart that the engine refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// One line for humans (chat webhooks display `text`).
    pub text: String,
    /// muster's version.
    pub muster: String,
}

/// Where notifications go, as set (flag, environment, config file); built by
/// the settings, which check both values before anything starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyOptions {
    /// http:// or https://; `None`: log only.
    pub webhook_url: Option<String>,
    /// For an https:// webhook: PEM CA certificates to trust instead of the system's.
    pub webhook_ca_file: Option<PathBuf>,
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Per attempt (connect + request + answer).
    pub timeout: Duration,
    /// Attempts per notification (1 = no retry).
    pub attempts: u32,
    /// Delay before the second attempt; doubles after each.
    pub retry_delay: Duration,
    /// Notifications waiting for delivery; beyond it new ones are dropped.
    pub queue: usize,
    /// For `https://`: PEM CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            timeout: Duration::from_secs(5),
            attempts: 3,
            retry_delay: Duration::from_secs(1),
            queue: 256,
            ca_file: None,
        }
    }
}

/// A webhook setting muster cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotifyError {
    /// The URL does not parse (`shown` has its password replaced).
    #[error("{shown} is not a usable webhook URL: {message}")]
    Url { shown: String, message: String },
    #[error("{shown}: scheme {scheme:?} is not http:// or https://")]
    Scheme { shown: String, scheme: String },
    /// The TLS client settings cannot be built; `field` names the setting
    /// it is about (`webhook_url` or `webhook_ca_file`).
    #[error("{field}: {message}")]
    Tls {
        field: &'static str,
        message: String,
    },
}

impl NotifyError {
    /// The setting the error is about: `webhook_url` or `webhook_ca_file`.
    pub fn field(&self) -> &'static str {
        match self {
            NotifyError::Tls { field, .. } => field,
            NotifyError::Url { .. } | NotifyError::Scheme { .. } => "webhook_url",
        }
    }

    /// What is wrong, without the setting's name.
    pub fn detail(&self) -> String {
        match self {
            NotifyError::Tls { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// A parsed webhook URL.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookTarget {
    host: String,
    port: u16,
    /// `Host:` header.
    authority: String,
    path: String,
    /// `Authorization: Basic …` from the URL's user info.
    basic: Option<String>,
    /// The URL with its password, path and query hidden, for logs and errors.
    shown: String,
    https: bool,
}

impl WebhookTarget {
    /// Accepts `http[s]://[user[:password]@]host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<WebhookTarget, NotifyError> {
        let shown = redact_url_path(url);
        let parts = crate::url::split_url(url).map_err(|message| NotifyError::Url {
            shown: shown.clone(),
            message,
        })?;
        let (https, default_port) = match parts.scheme {
            "http" => (false, 80),
            "https" => (true, 443),
            other => {
                return Err(NotifyError::Scheme {
                    shown,
                    scheme: other.to_string(),
                })
            }
        };
        let port = parts.port.unwrap_or(default_port);
        let host = parts.host.to_string();
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let path = match parts.rest.split('#').next().unwrap_or("") {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        let basic = parts.userinfo.filter(|u| !u.is_empty()).map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let pair = format!("{}:{}", percent_decode(user), percent_decode(pass));
            format!("Basic {}", BASE64.encode(pair))
        });
        Ok(WebhookTarget {
            host,
            port,
            authority,
            path,
            basic,
            shown,
            https,
        })
    }

    /// The TLS client settings for an `https://` target (`None` for
    /// `http://`); `ca_file` with an `http://` URL is an error. An error
    /// names the setting it is about, `webhook_url` or `webhook_ca_file`.
    pub fn tls(
        &self,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Option<Arc<rustls::ClientConfig>>, NotifyError> {
        if !self.https {
            return match ca_file {
                Some(_) => Err(NotifyError::Tls {
                    field: "webhook_ca_file",
                    message: format!("is for an https:// webhook; {} is http://", self.shown),
                }),
                None => Ok(None),
            };
        }
        crate::tls::client_config(ca_file, None)
            .map(Some)
            .map_err(|(field, message)| NotifyError::Tls {
                field: match field {
                    "ca_file" => "webhook_ca_file",
                    _ => "webhook_url",
                },
                message,
            })
    }

    /// The URL for logs (password replaced).
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// Sends notifications: logs are the supervisor's; this delivers to the webhook.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Notification>>,
    shown: Option<String>,
    /// Delivery as the sender finds it (`/status` `links.webhook`).
    link: Option<LinkReporter>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shown {
            Some(url) => write!(f, "Notifier(webhook {url})"),
            None => f.write_str("Notifier(log only)"),
        }
    }
}

impl Notifier {
    /// Logs only.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// Delivers to `url` from a task on the current Tokio runtime.
    pub fn webhook(url: &str, options: WebhookOptions) -> Result<Notifier, NotifyError> {
        let target = WebhookTarget::parse(url)?;
        let tls = target.tls(options.ca_file.as_deref())?;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let shown = target.shown.clone();
        let link = LinkReporter::new();
        tokio::spawn(deliver_all(target, tls, options, rx, link.clone()));
        Ok(Notifier {
            tx: Some(tx),
            shown: Some(shown),
            link: Some(link),
        })
    }

    /// A webhook when `webhook_url` is set, else log only.
    pub fn from_options(options: &NotifyOptions) -> Result<Notifier, NotifyError> {
        match &options.webhook_url {
            Some(url) => Notifier::webhook(
                url,
                WebhookOptions {
                    ca_file: options.webhook_ca_file.clone(),
                    ..WebhookOptions::default()
                },
            ),
            None => Ok(Notifier::disabled()),
        }
    }

    /// Webhook delivery's state: `connecting` until the first delivery,
    /// then `connected` after one that was accepted and `reconnecting`
    /// (with the reason) after one that failed. `None` without a webhook.
    pub fn link(&self) -> Option<LinkWatch> {
        self.link.as_ref().map(LinkReporter::subscribe)
    }

    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues `n` for delivery; never waits.
    pub fn notify(&self, n: Notification) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(n) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(n)) => {
                tracing::warn!(event = n.event.as_str(), service = %n.service, webhook = ?self.shown, "webhook queue is full; notification dropped");
            }
            Err(mpsc::error::TrySendError::Closed(n)) => {
                tracing::warn!(event = n.event.as_str(), service = %n.service, "webhook sender stopped; notification dropped");
            }
        }
    }
}

async fn deliver_all(
    target: WebhookTarget,
    tls: Option<Arc<rustls::ClientConfig>>,
    options: WebhookOptions,
    mut rx: mpsc::Receiver<Notification>,
    link: LinkReporter,
) {
    while let Some(n) = rx.recv().await {
        let body = match serde_json::to_vec(&n) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!(error = %e, "notification not serialisable");
                continue;
            }
        };
        let mut delay = options.retry_delay;
        for attempt in 1..=options.attempts.max(1) {
            match tokio::time::timeout(options.timeout, post(&target, tls.as_ref(), body.clone()))
                .await
            {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    link.connected();
                    tracing::debug!(webhook = %target.shown, event = n.event.as_str(), service = %n.service, status, "notification delivered");
                    break;
                }
                result => {
                    let (why, retry) = match result {
                        Ok(Ok(status)) => (
                            format!("answered HTTP {status}"),
                            status == 429 || status >= 500,
                        ),
                        Ok(Err(e)) => (e.text, e.retry),
                        Err(_) => (
                            format!(
                                "no answer within {}",
                                crate::duration::format(options.timeout)
                            ),
                            true,
                        ),
                    };
                    link.failed(&why);
                    if retry && attempt < options.attempts {
                        tracing::warn!(webhook = %target.shown, event = n.event.as_str(), service = %n.service, attempt, error = %why, retry_in = %crate::duration::format(delay), "webhook delivery failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = delay.saturating_mul(2);
                    } else {
                        tracing::warn!(webhook = %target.shown, event = n.event.as_str(), service = %n.service, attempt, error = %why, "webhook delivery failed; notification dropped");
                        break;
                    }
                }
            }
        }
    }
}

/// Why one POST failed, and whether another try could help.
struct PostError {
    text: String,
    retry: bool,
}

impl From<String> for PostError {
    fn from(text: String) -> Self {
        PostError { text, retry: true }
    }
}

/// One POST on a fresh connection (TLS over it for `https://`); returns
/// the status code.
async fn post(
    target: &WebhookTarget,
    tls: Option<&Arc<rustls::ClientConfig>>,
    body: Bytes,
) -> Result<u16, PostError> {
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect to {}: {e}", target.authority))?;
    let _ = stream.set_nodelay(true);
    let Some(config) = tls else {
        return exchange(target, stream, body).await;
    };
    let stream = crate::tls::handshake(config, &target.host, &target.authority, stream)
        .await
        .map_err(|e| PostError {
            text: e.text,
            // A certificate the server will present again: retrying cannot help.
            retry: !e.certificate_refused,
        })?;
    exchange(target, stream, body).await
}

/// The POST itself, over a connected (plain or TLS) stream.
async fn exchange<S>(target: &WebhookTarget, stream: S, body: Bytes) -> Result<u16, PostError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {}: {e}", target.authority))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(target.path.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("muster/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(basic) = &target.basic {
        req = req.header(hyper::header::AUTHORIZATION, basic.as_str());
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("bad request: {e}"))?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| {
            format!(
                "POST to {}: {}",
                target.authority,
                crate::error_text::error_chain(&e)
            )
        })?;
        let status = resp.status().as_u16();
        // Read (and drop) the answer so the exchange completes.
        let _ = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await;
        Ok(status)
    }
    .await;
    conn.abort();
    result
}

/// `%XX` escapes of a URL's user info, as the URL's author wrote them.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_webhook_urls() {
        let t = WebhookTarget::parse("http://hooks.local:9000/muster?team=ops").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("hooks.local", 9000, "/muster?team=ops")
        );
        assert_eq!(t.basic, None);
        let t = WebhookTarget::parse("http://ops:s%40cret@127.0.0.1/").unwrap();
        assert_eq!(t.port, 80);
        assert_eq!(t.basic.as_deref(), Some("Basic b3BzOnNAY3JldA=="));
        assert_eq!(t.shown(), "http://ops:***@127.0.0.1/");
        let t = WebhookTarget::parse("http://h:1?x=1").unwrap();
        assert_eq!(t.path, "/?x=1");
        let t = WebhookTarget::parse("https://u:pw@hooks.slack.com/x").unwrap();
        assert_eq!((t.port, t.https), (443, true));
        // The path of a webhook URL is often its secret (Slack's /services/…).
        assert_eq!(t.shown(), "https://u:***@hooks.slack.com/…");
        // An escape at the very end of the password is decoded too.
        let t = WebhookTarget::parse("http://ops:s3cret%40@127.0.0.1/").unwrap();
        assert_eq!(
            t.basic.as_deref(),
            Some(format!("Basic {}", BASE64.encode("ops:s3cret@")).as_str())
        );
        let e = WebhookTarget::parse("ftp://u:pw@hooks.local/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ftp") && !e.contains("pw@"), "{e}");
        let plain = WebhookTarget::parse("http://h/x").unwrap();
        let err = plain.tls(Some(std::path::Path::new("ca.pem"))).unwrap_err();
        assert_eq!(err.field(), "webhook_ca_file");
        assert!(WebhookTarget::parse("hooks.local/x").is_err());
        assert!(WebhookTarget::parse("http://:80/").is_err());
    }

    #[test]
    fn payload_shape() {
        let n = Notification {
            event: NotifyEvent::Restart,
            project: "p".into(),
            service: "api".into(),
            reason: "x".into(),
            at_ms: 1,
            containers: vec!["p-api-1".into()],
            by: Some(RestartBy::Muster),
            attempt: Some(2),
            backoff_ms: Some(2000),
            restarts: 2,
            budget: Some(BudgetNote {
                used: 2,
                limit: 5,
                window_s: 600,
            }),
            error: None,
            text: "t".into(),
            muster: "0.1.0".into(),
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["event"], "restart");
        assert_eq!(v["by"], "muster");
        assert_eq!(v["budget"]["limit"], 5);
        assert!(v.get("error").is_none());
        let back: Notification = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }
}
