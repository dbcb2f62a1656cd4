//! The health endpoint over real HTTP on loopback, driven by a real
//! `StateStore`: readiness, status JSON, metrics text, SSE, methods.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::health::{eventually, options, request, two_service_store, Server};
use muster::health::{ServerOptions, StatusView};
use muster::probe::ProbeOutcome;
use muster::supervisor::{
    EngineLink, ProbeObservation, ServiceState, ServiceStatus, StateEvent, Writer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_as_states_change() {
    let server = Server::start(two_service_store(), options()).await;
    let store = &server.store();

    let r = server.get("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("[-]redis failed: pending"),
        "{}",
        r.text()
    );
    assert!(r.text().ends_with("readyz check failed\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    store.transition("redis", ServiceState::Starting, "container started");
    store.transition("redis", ServiceState::Ready, "PONG");
    store.transition("memory-agent", ServiceState::Starting, "container started");
    let r = server.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert!(
        r.text()
            .contains("[-]memory-agent failed: starting: container started"),
        "{}",
        r.text()
    );

    store.transition("memory-agent", ServiceState::Ready, "agent signalled ready");
    let r = server.get("/readyz").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(server.get("/readyz/memory-agent").await.status, 200);

    store.transition("memory-agent", ServiceState::Unready, "ready key expired");
    let r = server.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert!(r
        .text()
        .contains("[-]memory-agent failed: unready: ready key expired"));
    let one = server.get("/readyz/memory-agent").await;
    assert_eq!(one.status, 503);
    assert_eq!(
        one.text(),
        "[-]memory-agent failed: unready: ready key expired\n"
    );
    assert_eq!(server.get("/readyz/redis").await.status, 200);
    assert_eq!(server.get("/readyz/nope").await.status, 404);

    // A service that is not required never holds readiness.
    store.update("memory-agent", |s| s.required = false);
    let r = server.get("/readyz?verbose").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .text()
        .contains("[+]memory-agent ok (not required; unready: ready key expired)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_verbose_and_exclude() {
    let server = Server::start(two_service_store(), options()).await;
    let store = &server.store();
    store.transition("redis", ServiceState::Ready, "PONG");
    store.transition("memory-agent", ServiceState::Failed, "exited with code 137");

    let r = server.get("/readyz?verbose").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "[+]redis ok\n[-]memory-agent failed: failed: exited with code 137\nreadyz check failed\n"
    );

    let r = server.get("/readyz?exclude=memory-agent").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    let r = server
        .get("/readyz?verbose&exclude=memory-agent&exclude=ghost")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "[+]redis ok\n[+]memory-agent excluded: ok\nwarn: some health checks cannot be excluded: no matches for \"ghost\"\nreadyz check passed\n"
    );

    // Excluding the one that is fine does not help.
    let r = server.get("/readyz?exclude=redis&verbose=1").await;
    assert_eq!(r.status, 503);
    assert!(r.text().contains("[+]redis excluded: ok"));

    // Repeated exclude, percent-encoded.
    store.transition("redis", ServiceState::Unready, "LOADING");
    let r = server
        .get("/readyz?exclude=redis&exclude=memory%2Dagent")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // An empty stack is not ready.
    let empty = Server::start(Writer::new("empty"), options()).await;
    let r = empty.get("/readyz?verbose").await;
    assert_eq!(r.status, 503);
    assert!(r
        .text()
        .contains("[-]services failed: no services loaded yet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_matches_the_store() {
    let server = Server::start(two_service_store(), options()).await;
    let store = &server.store();
    store.transition("redis", ServiceState::Starting, "container started");
    store.transition("redis", ServiceState::Ready, "PONG");
    store.update("memory-agent", |s| {
        s.progress = Some("loading model 40%".into());
        s.restarts = 2;
    });
    store.transition(
        "memory-agent",
        ServiceState::Starting,
        "waiting for ready signal",
    );

    let r = server.get("/status").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let view: StatusView = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(view.snapshot, *store.snapshot());
    assert!(!view.ready);
    assert_eq!((view.ready_count, view.unready_count), (1, 1));
    assert_eq!(view.counts["ready"], 1);
    assert_eq!(view.counts["starting"], 1);
    assert_eq!(view.counts["failed"], 0);
    let raw = r.json();
    assert_eq!(raw["project"], "healthtest");
    assert_eq!(raw["services"]["redis"]["container_ids"][0], "abc123");
    assert_eq!(raw["services"]["memory-agent"]["grace_ms"], 30_000);

    // The cache follows changes.
    store.transition("memory-agent", ServiceState::Ready, "agent ready");
    let view: StatusView = serde_json::from_slice(&server.get("/status").await.body).unwrap();
    assert_eq!(view.snapshot, *store.snapshot());
    assert!(view.ready);

    let r = server.get("/status/memory-agent").await;
    assert_eq!(r.status, 200);
    let one: ServiceStatus = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(one, store.snapshot().services["memory-agent"]);
    assert_eq!(one.progress.as_deref(), Some("loading model 40%"));

    let r = server.get("/status/ghost").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let err = r.json();
    assert_eq!(err["error"], "unknown service");
    assert_eq!(err["service"], "ghost");
    assert_eq!(err["known"], serde_json::json!(["memory-agent", "redis"]));
}

/// One sample line of the text exposition format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// Parses Prometheus / OpenMetrics text; every line must be well formed and
/// every sample must belong to a family declared with `# TYPE`.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    if lines.last() != Some(&"# EOF") {
        return Err("missing final # EOF".into());
    }
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if let Some(comment) = line.strip_prefix("# ") {
            if comment == "EOF" {
                if n != lines.len() {
                    return Err(format!("line {n}: # EOF before the end"));
                }
                continue;
            }
            let mut parts = comment.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let name = parts.next().ok_or(format!("line {n}: no metric name"))?;
            if !is_name(name, true) {
                return Err(format!("line {n}: bad metric name {name:?}"));
            }
            let rest = parts.next().unwrap_or("");
            match kind {
                "TYPE" => {
                    let known = [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "stateset",
                        "gaugehistogram",
                        "unknown",
                    ];
                    if !known.contains(&rest) {
                        return Err(format!("line {n}: unknown type {rest:?}"));
                    }
                    families.insert(name.to_string(), rest.to_string());
                }
                "HELP" | "UNIT" => {}
                other => return Err(format!("line {n}: unknown comment {other:?}")),
            }
            continue;
        }
        // name{label="value",...} value [timestamp]
        let name_end = line
            .find(['{', ' '])
            .ok_or(format!("line {n}: no value: {line:?}"))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(format!("line {n}: bad sample name {name:?}"));
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let bytes = inner.as_bytes();
            let mut idx = 0;
            loop {
                match bytes.get(idx) {
                    None => return Err(format!("line {n}: labels not closed")),
                    Some(b'}') => {
                        idx += 1;
                        break;
                    }
                    Some(_) => {}
                }
                let eq = inner[idx..]
                    .find('=')
                    .ok_or(format!("line {n}: label without ="))?
                    + idx;
                let lname = &inner[idx..eq];
                if !is_name(lname, false) {
                    return Err(format!("line {n}: bad label name {lname:?}"));
                }
                if bytes.get(eq + 1) != Some(&b'"') {
                    return Err(format!("line {n}: label value not quoted"));
                }
                idx = eq + 2;
                let mut value = String::new();
                loop {
                    match bytes.get(idx) {
                        None => return Err(format!("line {n}: unterminated label value")),
                        Some(b'\\') => {
                            match bytes.get(idx + 1) {
                                Some(b'n') => value.push('\n'),
                                Some(b'"') => value.push('"'),
                                Some(b'\\') => value.push('\\'),
                                _ => return Err(format!("line {n}: bad escape")),
                            }
                            idx += 2;
                        }
                        Some(b'"') => {
                            idx += 1;
                            break;
                        }
                        Some(_) => {
                            let ch = inner[idx..].chars().next().unwrap();
                            value.push(ch);
                            idx += ch.len_utf8();
                        }
                    }
                }
                labels.insert(lname.to_string(), value);
                match bytes.get(idx) {
                    Some(b',') => idx += 1,
                    Some(b'}') => {}
                    _ => return Err(format!("line {n}: expected , or }} after a label")),
                }
            }
            rest = &inner[idx..];
        }
        let rest = rest
            .strip_prefix(' ')
            .ok_or(format!("line {n}: no space before value"))?;
        let mut fields = rest.split(' ');
        let value =
            parse_value(fields.next().unwrap_or("")).map_err(|e| format!("line {n}: {e}"))?;
        if let Some(ts) = fields.next() {
            ts.parse::<f64>()
                .map_err(|_| format!("line {n}: bad timestamp {ts:?}"))?;
        }
        if fields.next().is_some() {
            return Err(format!("line {n}: trailing fields"));
        }
        let family = [
            "_total", "_bucket", "_count", "_sum", "_created", "_info", "",
        ]
        .iter()
        .find_map(|suffix| {
            name.strip_suffix(suffix)
                .filter(|f| families.contains_key(*f))
        });
        if family.is_none() {
            return Err(format!("line {n}: sample {name} has no # TYPE"));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    find(samples, name, labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .value
}

#[test]
fn the_exposition_parser_rejects_bad_lines() {
    assert!(parse_exposition("# TYPE a gauge\na 1\n# EOF\n").is_ok());
    for bad in [
        "# TYPE a gauge\na 1\n",                  // no EOF
        "# TYPE a gauge\na{x=\"1} 1\n# EOF\n",    // unterminated
        "# TYPE a gauge\na{x=1} 1\n# EOF\n",      // unquoted
        "# TYPE a gauge\na one\n# EOF\n",         // bad value
        "b 1\n# EOF\n",                           // no TYPE
        "# TYPE a gauge\na{1x=\"1\"} 1\n# EOF\n", // bad label name
        "# TYPE a nonsense\n# EOF\n",             // bad type
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text() {
    let server = Server::start(two_service_store(), options()).await;
    let store = &server.store();
    store.transition("redis", ServiceState::Starting, "container started");
    tokio::time::sleep(Duration::from_millis(30)).await;
    store.transition("redis", ServiceState::Ready, "PONG");
    store.update("redis", |s| s.restarts = 3);
    store.set_engine_link(EngineLink {
        connected: false,
        reconnects: 4,
        since_ms: 1,
        last_error: Some("event stream ended".into()),
    });
    store.transition(
        "memory-agent",
        ServiceState::Failed,
        "label \"quoted\"\nnewline",
    );
    // Give the server's probe follower a subscription before sending.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for outcome in [
        ProbeOutcome::ok(Duration::from_millis(2), "PONG"),
        ProbeOutcome::ok(Duration::from_millis(40), "PONG"),
        ProbeOutcome::fail(Duration::from_millis(900), "connection refused"),
    ] {
        store.observe_probe(ProbeObservation {
            service: "redis".into(),
            kind: "redis".into(),
            outcome,
        });
    }
    store.observe_probe(ProbeObservation {
        service: "memory-agent".into(),
        kind: "agent".into(),
        outcome: ProbeOutcome::timeout(Duration::from_secs(1)),
    });

    let probe = [("service", "redis"), ("kind", "redis")];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let r = server.get("/metrics").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
        );
        let text = r.text();
        let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let done = find(&samples, "muster_probe_duration_seconds_count", &probe)
            .is_some_and(|s| s.value == 3.0)
            && find(
                &samples,
                "muster_probe_failures_total",
                &[("service", "memory-agent")],
            )
            .is_some();
        if done {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "probe runs never showed up:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let samples = parse_exposition(&text).unwrap();

    assert_eq!(
        value(
            &samples,
            "muster_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(value(&samples, "muster_stack_ready", &[]), 0.0);
    assert_eq!(
        value(
            &samples,
            "muster_service_state",
            &[("service", "redis"), ("state", "ready")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "muster_service_state",
            &[("service", "redis"), ("state", "pending")]
        ),
        0.0
    );
    let redis_states: f64 = samples
        .iter()
        .filter(|s| s.name == "muster_service_state" && s.labels["service"] == "redis")
        .map(|s| s.value)
        .sum();
    assert_eq!(redis_states, 1.0, "exactly one state is current");
    assert_eq!(
        samples
            .iter()
            .filter(|s| s.name == "muster_service_state" && s.labels["service"] == "redis")
            .count(),
        8
    );
    assert_eq!(
        value(
            &samples,
            "muster_service_state",
            &[("service", "memory-agent"), ("state", "failed")]
        ),
        1.0
    );
    assert_eq!(
        value(&samples, "muster_service_ready", &[("service", "redis")]),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "muster_service_ready",
            &[("service", "memory-agent")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "muster_service_restarts_total",
            &[("service", "redis")]
        ),
        3.0
    );
    assert_eq!(value(&samples, "muster_engine_connected", &[]), 0.0);
    assert_eq!(value(&samples, "muster_engine_reconnects_total", &[]), 4.0);
    assert_eq!(
        value(
            &samples,
            "muster_service_grace_period_seconds",
            &[("service", "memory-agent")]
        ),
        30.0
    );
    let ttr = value(
        &samples,
        "muster_service_time_to_ready_seconds",
        &[("service", "redis")],
    );
    assert!((0.02..60.0).contains(&ttr), "time to ready {ttr}");
    assert!(find(
        &samples,
        "muster_service_time_to_ready_seconds",
        &[("service", "memory-agent")]
    )
    .is_none());

    // Histogram: 3 runs, sum 0.942 s, buckets cumulative, +Inf = count.
    assert_eq!(
        value(&samples, "muster_probe_duration_seconds_count", &probe),
        3.0
    );
    let sum = value(&samples, "muster_probe_duration_seconds_sum", &probe);
    assert!((sum - 0.942).abs() < 1e-9, "{sum}");
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| {
            s.name == "muster_probe_duration_seconds_bucket" && s.labels["service"] == "redis"
        })
        .map(|s| {
            (
                s.labels["le"].parse::<f64>().unwrap_or(f64::INFINITY),
                s.value,
            )
        })
        .collect();
    assert!(buckets.len() > 5);
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{buckets:?}"
    );
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 3.0));
    let le_4ms = buckets.iter().find(|(le, _)| *le >= 0.004).unwrap();
    assert_eq!(le_4ms.1, 1.0, "only the 2 ms run is under {}", le_4ms.0);
    assert_eq!(value(&samples, "muster_probe_failures_total", &probe), 1.0);
    assert_eq!(
        value(
            &samples,
            "muster_probe_failures_total",
            &[("service", "memory-agent"), ("kind", "agent")]
        ),
        1.0
    );

    // After everything is ready the stack gauge flips.
    store.transition("memory-agent", ServiceState::Ready, "ok");
    let samples = parse_exposition(&server.get("/metrics").await.text()).unwrap();
    assert_eq!(value(&samples, "muster_stack_ready", &[]), 1.0);
}

/// Reads from an SSE connection until `needle` shows up; returns all text read.
async fn read_until(stream: &mut TcpStream, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within 10s; got {seen:?}"))
            .unwrap();
        assert!(n > 0, "stream closed before {needle:?}; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn open_events(server: &Server) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "retry: 2000").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    (stream, seen)
}

/// The `data:` of the first `event: state` frame in `text`.
fn first_state_event(text: &str) -> StateEvent {
    let at = text.find("event: state\ndata: ").expect("a state frame");
    let data = &text[at + "event: state\ndata: ".len()..];
    let line = data.split('\n').next().unwrap();
    serde_json::from_str(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_deliver_state_changes() {
    let server = Server::start(
        two_service_store(),
        ServerOptions {
            sse_keepalive: Duration::from_millis(200),
            ..options()
        },
    )
    .await;
    let (mut stream, mut seen) = open_events(&server).await;
    server
        .store()
        .transition("memory-agent", ServiceState::Starting, "loading model");
    read_until(&mut stream, &mut seen, "loading model").await;
    let event = first_state_event(&seen);
    assert_eq!(event.service, "memory-agent");
    assert_eq!(event.transition.from, ServiceState::Pending);
    assert_eq!(event.transition.to, ServiceState::Starting);
    assert_eq!(
        event.transition,
        *server.store().snapshot().services["memory-agent"]
            .transitions
            .last()
            .unwrap()
    );
    // Keep-alive comments flow while nothing changes.
    read_until(&mut stream, &mut seen, ": keep-alive\n\n").await;
    // A second client sees later changes too.
    let (mut other, mut other_seen) = open_events(&server).await;
    server
        .store()
        .transition("redis", ServiceState::Ready, "PONG");
    read_until(&mut other, &mut other_seen, "event: state").await;
    assert_eq!(first_state_event(&other_seen).service, "redis");
}

/// The server and this test share one thread, so the stream cannot drain
/// while 2000 transitions are made: the receiver lags and must resync.
#[tokio::test(flavor = "current_thread")]
async fn a_lagging_events_client_is_told_to_resync() {
    let server = Server::start(two_service_store(), options()).await;
    let (mut stream, mut seen) = open_events(&server).await;
    for i in 0..1000 {
        server
            .store()
            .transition("redis", ServiceState::Ready, format!("up {i}"));
        server
            .store()
            .transition("redis", ServiceState::Unready, format!("down {i}"));
    }
    read_until(&mut stream, &mut seen, "event: resync\ndata: {\"missed\":").await;
    // The stream goes on with the events still held, and later ones.
    server
        .store()
        .transition("memory-agent", ServiceState::Failed, "after the burst");
    read_until(&mut stream, &mut seen, "after the burst").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_head_and_unknown_paths() {
    let server = Server::start(two_service_store(), options()).await;
    let addr = server.addr;

    for path in ["/readyz", "/status", "/metrics", "/healthz", "/events", "/"] {
        let r = request(addr, "POST", path, &[], b"{}").await;
        assert_eq!(r.status, 405, "POST {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"), "POST {path}");
        assert_eq!(r.json()["error"], "method not allowed");
    }
    let r = request(addr, "DELETE", "/status/redis", &[], b"").await;
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, OPTIONS"))
    );
    let r = request(addr, "OPTIONS", "/readyz", &[], b"").await;
    assert_eq!(
        (r.status, r.header("allow")),
        (204, Some("GET, HEAD, OPTIONS"))
    );

    for path in [
        "/status",
        "/readyz",
        "/metrics",
        "/",
        "/livez",
        "/status/redis",
    ] {
        let get = request(addr, "GET", path, &[], b"").await;
        let head = request(addr, "HEAD", path, &[], b"").await;
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} sent a body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
        if path != "/metrics" {
            assert_eq!(
                head.header("content-length").map(str::to_string),
                Some(get.body.len().to_string()),
                "HEAD {path}"
            );
        }
    }
    let head = request(addr, "HEAD", "/events", &[], b"").await;
    assert_eq!(
        (head.status, head.header("content-type")),
        (200, Some("text/event-stream"))
    );

    let r = server.get("/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not found");
    assert_eq!(server.get("/status/").await.status, 404);
    assert_eq!(server.get("/readyz/a/b").await.status, 404);

    let page = server.get("/").await;
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains("new EventSource(\"/events\")") && html.contains("fetch(\"/status\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_ignored_and_bounded() {
    let server = Server::start(
        two_service_store(),
        ServerOptions {
            max_body_bytes: 1024,
            ..options()
        },
    )
    .await;
    // Two requests on one keep-alive connection, the first with a small body.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /status/redis HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    stream
        .write_all(b"GET /readyz/redis HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let (first, used) = crate::support::health::parse_response(&raw, false);
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["name"], "redis");
    let (second, _) = crate::support::health::parse_response(&raw[used..], false);
    assert_eq!(second.status, 503);

    // A request head beyond the 16 KiB buffer is refused (431), not buffered.
    let huge = "x".repeat(20 * 1024);
    let r = request(server.addr, "GET", "/readyz", &[("X-Huge", &huge)], b"").await;
    assert_eq!(r.status, 431);

    // Declared too large: 413 without reading it.
    let r = request(
        server.addr,
        "GET",
        "/readyz",
        &[("Content-Length", "10000000")],
        b"",
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    // Chunked and too large.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let chunk = vec![b'x'; 4096];
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    stream
        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
        .await
        .unwrap();
    stream.write_all(&chunk).await.unwrap();
    stream.write_all(b"\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_follows_the_heartbeat() {
    let store = two_service_store();
    let server = Server::start(
        store.clone(),
        ServerOptions {
            liveness_window: Some(Duration::from_millis(300)),
            ..options()
        },
    )
    .await;
    // Inside the start-up allowance.
    let r = server.get("/healthz?verbose").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .text()
        .contains("[+]heartbeat ok (waiting for the first supervisor heartbeat)"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = server.get("/livez").await;
    assert_eq!(r.status, 503);
    assert!(
        r.text()
            .contains("[-]heartbeat failed: no supervisor heartbeat"),
        "{}",
        r.text()
    );
    assert!(r.text().ends_with("livez check failed\n"));

    eventually("a beat makes /healthz ok", || {
        store.beat();
        let addr = server.addr;
        async move { request(addr, "GET", "/healthz", &[], b"").await.status == 200 }
    })
    .await;
    assert_eq!(server.get("/livez").await.text(), "ok");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = server.get("/healthz").await;
    assert_eq!(r.status, 503);
    assert!(r.text().contains("heartbeat stalled"), "{}", r.text());
    // ?exclude works on liveness too.
    assert_eq!(server.get("/livez?exclude=heartbeat").await.status, 200);
}
