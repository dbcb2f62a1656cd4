//! HTTP readiness: GET or HEAD a URL over a kept-alive HTTP/1.1 connection;
//! the status must be in the accepted range, and optionally the body must
//! contain a string or a JSON pointer must equal a value.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::address::map_url;
use super::{Failure, Probe, ProbeContext, ProbeError, ProbeFuture, ProbeOutcome};
use crate::compose::xmuster::{HttpProbeSpec, JsonMatch};
use crate::error_text::error_chain;
use crate::tls::ClientIdentity;
use crate::url::split_url;

const KIND: &str = "http";
/// Bodies beyond this are not read (a readiness body is small).
const BODY_LIMIT: usize = 1 << 20;

/// Where an HTTP request goes, after the address mode was applied.
#[derive(Debug, Clone)]
pub(crate) struct HttpTarget {
    pub host: String,
    pub port: u16,
    /// `Host:` header value.
    pub authority: String,
    pub path: String,
    /// The URL for humans.
    pub url: String,
    /// `https://`: the TLS client settings (the server name is `host`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl HttpTarget {
    /// `http://` or `https://` (trusting the system's roots).
    pub(crate) fn parse(url: &str, ctx: &ProbeContext) -> Result<HttpTarget, String> {
        Self::parse_with_tls(url, ctx, None, None).map_err(|(_, e)| e)
    }

    /// As [`HttpTarget::parse`]; an `https://` URL trusts the CA
    /// certificates in `ca_file` (PEM) instead of the system's, and presents
    /// `identity` as its client certificate. TLS files with `http://` are an
    /// error. An error names the field it is about: `url`, `ca_file`,
    /// `cert_file` or `key_file`.
    pub(crate) fn parse_with_tls(
        url: &str,
        ctx: &ProbeContext,
        ca_file: Option<&Path>,
        identity: Option<&ClientIdentity>,
    ) -> Result<HttpTarget, (&'static str, String)> {
        let in_url = |e: String| ("url", e);
        let parts = split_url(url).map_err(in_url)?;
        let (default_port, tls) = match parts.scheme {
            "http" => {
                let named = [
                    ("ca_file", ca_file.is_some()),
                    ("cert_file", identity.is_some()),
                ];
                if let Some((field, _)) = named.into_iter().find(|(_, given)| *given) {
                    return Err((
                        field,
                        format!("{field} is for https:// URLs; this one is http://"),
                    ));
                }
                (80, None)
            }
            "https" => (443, Some(crate::tls::client_config(ca_file, identity)?)),
            other => {
                return Err(in_url(format!(
                    "scheme {other:?} is not http:// or https://"
                )))
            }
        };
        let mapped =
            map_url(ctx.address_mode, &ctx.published, url, default_port).map_err(in_url)?;
        let m = split_url(&mapped).map_err(in_url)?;
        let port = m.port.unwrap_or(default_port);
        let path = if m.rest.is_empty() || m.rest.starts_with('?') {
            format!("/{}", m.rest)
        } else {
            m.rest.split('#').next().unwrap_or("/").to_string()
        };
        let host = m.host.to_string();
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(HttpTarget {
            url: crate::url::redact_url(&mapped),
            host,
            port,
            authority,
            path,
            tls,
        })
    }
}

/// The socket under an HTTP connection: plain TCP or TLS over it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin> Io for T {}

/// The client side of one HTTP/1.1 connection: it reads and writes the socket.
type Conn = hyper::client::conn::http1::Connection<TokioIo<Box<dyn Io>>, Empty<Bytes>>;

/// One kept-alive HTTP/1.1 connection, re-made when the server closed it.
///
/// The connection is driven by the check that uses it (see [`driven`]), not
/// by a task of its own: a probe run then wakes one task, not two. Between
/// runs nothing reads the socket; a server that closed the connection
/// meanwhile is noticed by the next run, which retries once on a fresh one.
pub(crate) struct HttpConn {
    sender: Option<SendRequest<Empty<Bytes>>>,
    conn: Option<Pin<Box<Conn>>>,
}

/// Runs `f` (a request, or reading its body) while driving the connection.
/// When the connection ends (the server closed it, or an I/O error), it is
/// dropped, which fails a request still waiting for its answer.
async fn driven<F: Future>(conn: &mut Option<Pin<Box<Conn>>>, f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = f.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if let Some(c) = conn.as_mut() {
            if let Poll::Ready(result) = c.as_mut().poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP probe connection ended");
                }
                *conn = None;
            }
        }
        // The connection may have just handed `f` its answer.
        f.as_mut().poll(cx)
    })
    .await
}

pub(crate) struct HttpResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl HttpConn {
    pub(crate) fn new() -> HttpConn {
        HttpConn {
            sender: None,
            conn: None,
        }
    }

    async fn connect(
        target: &HttpTarget,
        timeout: Duration,
    ) -> Result<(SendRequest<Empty<Bytes>>, Pin<Box<Conn>>), Failure> {
        let stream = super::tcp::connect(&target.host, target.port, timeout).await?;
        let io: Box<dyn Io> = match &target.tls {
            None => Box::new(stream),
            Some(config) => Box::new(
                crate::tls::handshake(config, &target.host, &target.authority, stream)
                    .await
                    .map_err(|e| Failure::fail(e.text))?,
            ),
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| {
                Failure::fail(format!(
                    "HTTP handshake with {} failed: {e}",
                    target.authority
                ))
            })?;
        Ok((sender, Box::pin(conn)))
    }

    fn drop_connection(&mut self) {
        self.sender = None;
        self.conn = None;
    }

    /// Sends one request; a kept-alive connection the server closed meanwhile is
    /// retried once on a fresh connection.
    pub(crate) async fn request(
        &mut self,
        target: &HttpTarget,
        method: &Method,
        headers: &[(HeaderName, HeaderValue)],
        timeout: Duration,
        read_body: bool,
    ) -> Result<HttpResponse, Failure> {
        for attempt in 0..2 {
            let reused =
                self.conn.is_some() && self.sender.as_ref().is_some_and(|s| !s.is_closed());
            if !reused {
                let (sender, conn) = Self::connect(target, timeout).await?;
                self.sender = Some(sender);
                self.conn = Some(conn);
            }
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            if driven(&mut self.conn, sender.ready()).await.is_err() {
                self.drop_connection();
                continue;
            }
            let mut req = Request::builder()
                .method(method.clone())
                .uri(target.path.as_str());
            req = req.header(HOST, target.authority.as_str());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let req = req
                .body(Empty::new())
                .map_err(|e| Failure::fail(format!("bad request: {e}")))?;
            match driven(&mut self.conn, sender.send_request(req)).await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = if read_body {
                        let body = Limited::new(resp.into_body(), BODY_LIMIT).collect();
                        match driven(&mut self.conn, body).await {
                            Ok(b) => b.to_bytes(),
                            Err(e) => {
                                self.drop_connection();
                                return Err(Failure::fail(format!(
                                    "reading the body of {} failed: {}",
                                    target.url,
                                    error_chain(e.as_ref())
                                )));
                            }
                        }
                    } else {
                        drop(resp);
                        Bytes::new()
                    };
                    return Ok(HttpResponse { status, body });
                }
                Err(e) => {
                    self.drop_connection();
                    if reused && attempt == 0 {
                        continue;
                    }
                    return Err(Failure::fail(format!(
                        "HTTP request to {} failed: {}",
                        target.url,
                        error_chain(&e)
                    )));
                }
            }
        }
        Err(Failure::fail(format!(
            "HTTP request to {} failed: connection closed",
            target.url
        )))
    }
}

pub struct HttpProbe {
    target: HttpTarget,
    method: Method,
    status: Vec<(u16, u16)>,
    status_text: String,
    body_contains: Option<String>,
    json: Option<JsonMatch>,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    conn: HttpConn,
}

impl HttpProbe {
    pub fn new(
        spec: &HttpProbeSpec,
        ctx: &ProbeContext,
        timeout: Duration,
    ) -> Result<Self, ProbeError> {
        let in_field = |(field, e): (&'static str, String)| ProbeError::field(KIND, field, e);
        let identity =
            ClientIdentity::from_fields(spec.cert_file.as_deref(), spec.key_file.as_deref())
                .map_err(in_field)?;
        let target = HttpTarget::parse_with_tls(
            &spec.url,
            ctx,
            spec.ca_file.as_deref().map(Path::new),
            identity.as_ref(),
        )
        .map_err(in_field)?;
        let method = match spec
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("GET") => Method::GET,
            Some("HEAD") => Method::HEAD,
            Some(other) => {
                return Err(ProbeError::field(
                    KIND,
                    "method",
                    format!("{other:?} is not GET or HEAD"),
                ))
            }
        };
        let status_text = spec.status.clone().unwrap_or_else(|| "200-399".to_string());
        let status = parse_status(&status_text)
            .map_err(|e| ProbeError::field(KIND, "status", e.to_string()))?;
        let mut headers = Vec::new();
        for (k, v) in &spec.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| ProbeError::field(KIND, "headers", format!("{k:?}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| ProbeError::field(KIND, "headers", format!("{k}: {e}")))?;
            headers.push((name, value));
        }
        if let Some(j) = &spec.json {
            if !(j.pointer.is_empty() || j.pointer.starts_with('/')) {
                return Err(ProbeError::field(
                    KIND,
                    "json.pointer",
                    format!(
                        "{:?} is not a JSON pointer (starts with /, e.g. /status)",
                        j.pointer
                    ),
                ));
            }
        }
        if method == Method::HEAD && (spec.body_contains.is_some() || spec.json.is_some()) {
            return Err(ProbeError::field(
                KIND,
                "method",
                "HEAD has no body to match body_contains / json",
            ));
        }
        Ok(HttpProbe {
            target,
            method,
            status,
            status_text,
            body_contains: spec.body_contains.clone(),
            json: spec.json.clone(),
            headers,
            timeout,
            conn: HttpConn::new(),
        })
    }

    async fn run(&mut self) -> Result<String, Failure> {
        let read_body = self.body_contains.is_some() || self.json.is_some();
        let resp = self
            .conn
            .request(
                &self.target,
                &self.method,
                &self.headers,
                self.timeout,
                read_body,
            )
            .await?;
        let code = resp.status.as_u16();
        if !self
            .status
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&code))
        {
            let body = String::from_utf8_lossy(&resp.body);
            let body = if body.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", super::tail(&body, 200))
            };
            return Err(Failure::fail(format!(
                "HTTP {code}, want {}{body}",
                self.status_text
            )));
        }
        if let Some(needle) = &self.body_contains {
            let body = String::from_utf8_lossy(&resp.body);
            if !body.contains(needle.as_str()) {
                return Err(Failure::fail(format!(
                    "HTTP {code}: body does not contain {needle:?} (body: {})",
                    super::tail(&body, 120)
                )));
            }
        }
        if let Some(j) = &self.json {
            let value: serde_json::Value = serde_json::from_slice(&resp.body)
                .map_err(|e| Failure::fail(format!("HTTP {code}: body is not JSON: {e}")))?;
            match value.pointer(&j.pointer) {
                None => {
                    return Err(Failure::fail(format!(
                        "HTTP {code}: JSON has nothing at {}",
                        j.pointer
                    )))
                }
                Some(v) if v != &j.equals => {
                    return Err(Failure::fail(format!(
                        "HTTP {code}: JSON {} is {v}, want {}",
                        j.pointer, j.equals
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(format!("HTTP {code}"))
    }
}

impl Probe for HttpProbe {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn target(&self) -> String {
        self.target.url.clone()
    }

    fn check(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let start = Instant::now();
            let timeout = self.timeout;
            let url = self.target.url.clone();
            let result = match tokio::time::timeout(timeout, self.run()).await {
                Ok(r) => r,
                Err(_) => {
                    self.conn = HttpConn::new();
                    Err(Failure::timed_out(format!(
                        "no HTTP answer from {url} within {}",
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

/// Why an `expect.status` text is not a list of status codes or ranges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusListError {
    #[error("{0:?} is not a status code")]
    NotANumber(String),
    #[error("{0} is not a status code (100-599)")]
    OutOfRange(u16),
    #[error("range {0:?} is empty")]
    EmptyRange(String),
}

/// `"200-399"`, `"200"`, `"200,204,300-399"`.
pub fn parse_status(text: &str) -> Result<Vec<(u16, u16)>, StatusListError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let code = |s: &str| -> Result<u16, StatusListError> {
            let n: u16 = s
                .trim()
                .parse()
                .map_err(|_| StatusListError::NotANumber(s.to_string()))?;
            if !(100..=599).contains(&n) {
                return Err(StatusListError::OutOfRange(n));
            }
            Ok(n)
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (code(a)?, code(b)?),
            None => {
                let c = code(part)?;
                (c, c)
            }
        };
        if lo > hi {
            return Err(StatusListError::EmptyRange(part.to_string()));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

/// Why a plain GET gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("{0}")]
    Url(String),
    #[error("no answer from {url} within {after}")]
    Timeout { url: String, after: String },
    #[error("{0}")]
    Request(String),
}

/// One plain-HTTP GET (used by `muster status` to ask a running muster):
/// returns the status code and body, or why not.
pub async fn get(url: &str, timeout: Duration) -> Result<(u16, Bytes), GetError> {
    let target = HttpTarget::parse(url, &ProbeContext::default()).map_err(GetError::Url)?;
    let mut conn = HttpConn::new();
    match tokio::time::timeout(
        timeout,
        conn.request(&target, &Method::GET, &[], timeout, true),
    )
    .await
    {
        Err(_) => Err(GetError::Timeout {
            url: url.to_string(),
            after: crate::duration::format(timeout),
        }),
        Ok(Err(f)) => Err(GetError::Request(f.reason)),
        Ok(Ok(resp)) => Ok((resp.status.as_u16(), resp.body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status("200-399").unwrap(), vec![(200, 399)]);
        assert_eq!(
            parse_status("200, 204").unwrap(),
            vec![(200, 200), (204, 204)]
        );
        assert!(parse_status("2xx").is_err());
        assert!(parse_status("399-200").is_err());
        assert!(parse_status("700").is_err());
    }

    #[test]
    fn targets() {
        let ctx = ProbeContext::default();
        let t = HttpTarget::parse("http://api:8080/ready?x=1", &ctx).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("api", 8080, "/ready?x=1")
        );
        let t = HttpTarget::parse("http://api", &ctx).unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        assert!(HttpTarget::parse("ftp://x", &ctx).is_err());
    }
}
