//! Request routing: path and method to a response. Every route answers GET
//! and HEAD; OPTIONS lists them; any other method gets 405 with `Allow`.

use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::metrics::Metrics;
use super::readyz::{liveness_report, readiness_report, Liveness};
use super::status::StatusCache;
use super::{Body, ServerOptions};
use crate::supervisor::StateStore;

const ALLOW: &str = "GET, HEAD, OPTIONS";
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// What every request handler shares.
pub(crate) struct App {
    pub(crate) store: StateStore,
    pub(crate) options: ServerOptions,
    pub(crate) liveness: Liveness,
    pub(crate) metrics: Metrics,
    pub(crate) status: StatusCache,
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

fn json_error(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut body = value.to_string();
    body.push('\n');
    respond(status, JSON, body)
}

/// The routes, for 404 bodies and OPTIONS.
const ROUTES: &[&str] = &[
    "/",
    "/healthz",
    "/livez",
    "/readyz",
    "/readyz/{service}",
    "/status",
    "/status/{service}",
    "/metrics",
    "/events",
];

enum Route<'a> {
    Page,
    Live,
    Ready,
    ReadyOne(String),
    Status,
    StatusOne(String),
    Metrics,
    Events,
    NotFound(&'a str),
}

fn route(path: &str) -> Route<'_> {
    match path {
        "/" | "/index.html" => Route::Page,
        "/healthz" | "/livez" => Route::Live,
        "/readyz" => Route::Ready,
        "/status" => Route::Status,
        "/metrics" => Route::Metrics,
        "/events" => Route::Events,
        _ => {
            if let Some(name) = path
                .strip_prefix("/status/")
                .filter(|n| !n.is_empty() && !n.contains('/'))
            {
                Route::StatusOne(percent_decode(name))
            } else if let Some(name) = path
                .strip_prefix("/readyz/")
                .filter(|n| !n.is_empty() && !n.contains('/'))
            {
                Route::ReadyOne(percent_decode(name))
            } else {
                Route::NotFound(path)
            }
        }
    }
}

/// Query flags the health routes read.
#[derive(Default)]
struct Query {
    verbose: bool,
    excludes: Vec<String>,
}

fn parse_query(query: Option<&str>) -> Query {
    let mut q = Query::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(key).as_str() {
            // Kubernetes: the key's presence turns it on (`?verbose`, `?verbose=1`).
            "verbose" => q.verbose = value != "false" && value != "0",
            "exclude" => q.excludes.push(percent_decode(value)),
            _ => {}
        }
    }
    q
}

/// A query-string component: `+` is a space, `%XX` an escaped byte.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Reads and drops a request body, up to the limit. `Err` carries the
/// response to send instead (413), after which the connection is closed.
async fn drain_body(app: &App, body: Incoming) -> Result<(), Response<Body>> {
    if body.is_end_stream() {
        return Ok(());
    }
    let limit = app.options.max_body_bytes;
    let too_large = || {
        let mut res = json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            serde_json::json!({ "error": "request body too large", "limit_bytes": limit }),
        );
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        res
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let read = tokio::time::timeout(
        app.options.header_read_timeout,
        Limited::new(body, limit).collect(),
    )
    .await;
    match read {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(too_large()),
    }
}

pub(crate) async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let mut res = answer(&app, req).await;
    // Every answer names the stack, so a client can tell it reached the
    // muster of its own project (see `identity.rs`).
    if let Some(identity) = &app.options.identity {
        let h = res.headers_mut();
        for (name, value) in identity.headers() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                h.insert(name, value);
            }
        }
    }
    res
}

async fn answer(app: &App, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let route = route(parts.uri.path());
    if let Route::NotFound(path) = route {
        return json_error(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "not found", "path": path, "routes": ROUTES }),
        );
    }
    let head = match parts.method {
        Method::GET => false,
        Method::HEAD => true,
        Method::OPTIONS => {
            let mut res = respond(StatusCode::NO_CONTENT, TEXT, Bytes::new());
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            return res;
        }
        ref other => {
            let mut res = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({ "error": "method not allowed", "method": other.as_str(), "allow": ["GET", "HEAD", "OPTIONS"] }),
            );
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            return res;
        }
    };
    if let Err(res) = drain_body(app, body).await {
        return res;
    }
    let query = parse_query(parts.uri.query());
    match route {
        Route::Page => {
            let mut res = respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                super::page::HTML,
            );
            res.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
                ),
            );
            res
        }
        Route::Live => {
            let report = liveness_report(&app.liveness, &query.excludes);
            let status = if report.passed() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            respond(status, TEXT, report.render("livez", query.verbose))
        }
        Route::Ready => {
            let snap = app.store.snapshot();
            let shutting_down = *app.shutdown.borrow();
            // The common case, without building the check list.
            if !query.verbose
                && query.excludes.is_empty()
                && !shutting_down
                && !snap.services.is_empty()
                && snap.all_required_ready()
            {
                return respond(StatusCode::OK, TEXT, Bytes::from_static(b"ok"));
            }
            let report = readiness_report(&snap, &query.excludes, shutting_down);
            let status = if report.passed() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            respond(status, TEXT, report.render("readyz", query.verbose))
        }
        Route::ReadyOne(name) => {
            let snap = app.store.snapshot();
            let report = readiness_report(&snap, &[], false);
            match report.checks.iter().find(|c| c.name == name) {
                None => unknown_service(&name, &snap),
                Some(check) if check.ok => respond(StatusCode::OK, TEXT, "ok"),
                Some(check) => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!("[-]{} failed: {}\n", check.name, check.detail),
                ),
            }
        }
        Route::Status => respond(
            StatusCode::OK,
            JSON,
            app.status.json(
                app.store.snapshot(),
                app.store.telemetry(),
                app.options.identity.as_ref(),
            ),
        ),
        Route::StatusOne(name) => {
            let snap = app.store.snapshot();
            match snap.services.get(&name) {
                Some(svc) => {
                    let mut body = serde_json::to_vec(svc).unwrap_or_default();
                    body.push(b'\n');
                    respond(StatusCode::OK, JSON, body)
                }
                None => unknown_service(&name, &snap),
            }
        }
        Route::Metrics => match app.metrics.render() {
            Ok(text) => respond(StatusCode::OK, super::metrics::CONTENT_TYPE, text),
            Err(_) => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                "metrics encoding failed\n",
            ),
        },
        Route::Events => {
            let body = if head {
                full(Bytes::new())
            } else {
                super::events::body(&app.store, app.options.sse_keepalive, app.shutdown.clone())
            };
            let mut res = Response::new(body);
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // Tells nginx-style proxies not to buffer the stream.
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            res
        }
        Route::NotFound(_) => unreachable_not_found(),
    }
}

fn unreachable_not_found() -> Response<Body> {
    json_error(
        StatusCode::NOT_FOUND,
        serde_json::json!({ "error": "not found" }),
    )
}

fn unknown_service(name: &str, snap: &crate::supervisor::StackSnapshot) -> Response<Body> {
    let known: Vec<&String> = snap.services.keys().collect();
    json_error(
        StatusCode::NOT_FOUND,
        serde_json::json!({ "error": "unknown service", "service": name, "known": known }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_paths() {
        let q = parse_query(Some("verbose&exclude=redis&exclude=memory%2Dagent&x=1"));
        assert!(q.verbose);
        assert_eq!(q.excludes, vec!["redis", "memory-agent"]);
        assert!(!parse_query(Some("verbose=false")).verbose);
        assert!(!parse_query(None).verbose);
        assert_eq!(percent_decode("a%20b+c%zz%4"), "a b c%zz%4");
        assert!(matches!(route("/status/a%2Db"), Route::StatusOne(n) if n == "a-b"));
        assert!(matches!(route("/status/"), Route::NotFound(_)));
        assert!(matches!(route("/status/a/b"), Route::NotFound(_)));
        assert!(matches!(route("/readyz/redis"), Route::ReadyOne(n) if n == "redis"));
    }
}
