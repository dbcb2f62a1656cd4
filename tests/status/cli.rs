//! `muster status` end to end: the binary against a real redis-server, and
//! against a running muster's /status (served here by a small HTTP stand-in
//! until the health server exists).

use std::io::{Read, Write};
use std::process::Output;

use crate::support::{free_port, text, Muster, RedisServer, TempDir};
use muster::supervisor::{EngineLink, ServiceState, ServiceStatus, StackSnapshot};

fn muster(dir: &TempDir, args: &[&str]) -> Output {
    let mut cmd = Muster::new().dir(dir.path());
    cmd.env("MUSTER_PROBE_ADDRESS", "network");
    cmd.run(args)
}

/// dir/muster.yaml with service `cache` probed as the Redis at `redis_url`,
/// then `more` (further services, indented under `services:`).
fn cache_config(dir: &TempDir, redis_url: &str, more: &str) -> std::path::PathBuf {
    let config = dir.path().join("muster.yaml");
    std::fs::write(
        &config,
        format!(
            "services:\n  cache:\n    probes:\n      - redis: {{ url: \"{redis_url}\" }}\n        timeout: 1s\n{more}"
        ),
    )
    .expect("write muster.yaml");
    config
}

#[test]
fn status_probes_directly_when_no_muster_runs() {
    let mut redis = RedisServer::start();
    let dir = TempDir::new("muster-status");
    let config = cache_config(
        &dir,
        &redis.url(),
        &format!(
            "  extra:\n    required: false\n    probes:\n      - tcp: {{ address: \"127.0.0.1:{}\" }}\n",
            free_port()
        ),
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &listen,
        "status",
    ];
    let out = muster(&dir, &args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("SERVICE") && all.contains("LATENCY"), "{all}");
    let cache = all
        .lines()
        .find(|l| l.starts_with("cache"))
        .expect("cache row");
    assert!(cache.contains("ready") && cache.contains("PONG"), "{cache}");
    let extra = all
        .lines()
        .find(|l| l.starts_with("extra"))
        .expect("extra row");
    assert!(
        extra.contains("unready") && extra.contains("refused"),
        "optional and down: {extra}"
    );
    assert!(all.contains("1/1 required services ready"), "{all}");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = muster(&dir, &json_args);
    let snap: StackSnapshot =
        serde_json::from_slice(&out.stdout).expect("--json is a StackSnapshot");
    assert_eq!(snap.services["cache"].state, ServiceState::Ready);
    assert!(snap.services["cache"].probes[0]
        .last
        .as_ref()
        .unwrap()
        .is_ok());

    redis.kill();
    let out = muster(&dir, &args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let cache = all
        .lines()
        .find(|l| l.starts_with("cache"))
        .expect("cache row");
    assert!(
        cache.contains("unready") && cache.contains("refused"),
        "{cache}"
    );
}

#[test]
fn status_reports_bad_probe_config_with_file_and_key() {
    let dir = TempDir::new("muster-status-bad");
    let config = dir.path().join("muster.yaml");
    std::fs::write(
        &config,
        "services:\n  cache:\n    probes:\n      - rediss: { url: \"redis://x\" }\n",
    )
    .unwrap();
    let out = muster(&dir, &["--config", config.to_str().unwrap(), "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("muster.yaml") && err.contains("rediss") && err.contains("line 4"),
        "{err}"
    );
    std::fs::write(&config, "services:\n  cache:\n    probes:\n      - redis: { url: \"redis://x\", require: [pong] }\n").unwrap();
    let out = muster(&dir, &["--config", config.to_str().unwrap(), "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("muster.yaml")
            && err.contains("services.cache.probes[0]")
            && err.contains("require"),
        "{err}"
    );
}

/// Serves one fixed body on GET /status to every connection, until dropped,
/// as the muster of project `demo` in this test process's namespace.
fn serve_status(body: String) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let (code, body) = if req.starts_with("GET /status ") {
                ("200 OK", body.as_str())
            } else {
                ("404 Not Found", "")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nX-Muster-Project: demo\r\nX-Muster-Namespace: mt{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                std::process::id(),
                body.len()
            );
        }
    });
    (addr, handle)
}

#[test]
fn status_prints_a_running_musters_snapshot() {
    let mut snap = StackSnapshot {
        project: "demo".into(),
        at_ms: 1_700_000_060_000,
        services: Default::default(),
        // The healer lost the engine's event stream 30 s ago.
        engine: Some(EngineLink {
            connected: false,
            reconnects: 2,
            since_ms: 1_700_000_030_000,
            last_error: Some("connection refused".into()),
        }),
        links: Default::default(),
    };
    let mut redis = ServiceStatus::pending("redis");
    redis.state = ServiceState::Ready;
    redis.since_ms = 1_700_000_000_000;
    redis.reason = "PONG".into();
    let mut agent = ServiceStatus::pending("memory-agent");
    agent.state = ServiceState::Starting;
    agent.reason = "loading model 40%".into();
    snap.services.insert("redis".into(), redis);
    snap.services.insert("memory-agent".into(), agent);
    // What a running muster's /status serves: the snapshot with its counts.
    let view = muster::health::StatusView::of(&snap);
    let (addr, server) = serve_status(serde_json::to_string(&view).unwrap());
    let dir = TempDir::new("muster-status-live");
    let out = muster(&dir, &["-p", "demo", "--listen", &addr, "status"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "an agent still starting: {all}");
    assert!(all.contains(&format!("from the muster at {addr}")), "{all}");
    let row = all
        .lines()
        .find(|l| l.starts_with("redis"))
        .expect("redis row");
    assert!(row.contains("ready") && row.contains("1m0s ago"), "{row}");
    assert!(all.contains("loading model 40%"), "{all}");
    assert!(
        all.contains("ENGINE event stream lost 30s ago (connection refused)"),
        "{all}"
    );
    let out = muster(&dir, &["-p", "demo", "--listen", &addr, "status", "--json"]);
    let back: StackSnapshot = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(back, snap);
    server.join().unwrap();
}

/// This project's muster answers /status with a body this muster cannot read
/// (another version's, say): `status` warns on stderr, naming the address,
/// that the supervisor's view is not shown and what to do, and the table and
/// `--json` come from running the probes here (the test's own Redis).
#[test]
fn status_probes_directly_and_warns_when_the_musters_status_is_unreadable() {
    let redis = RedisServer::start();
    let dir = TempDir::new("muster-status-unreadable");
    let config = cache_config(&dir, &redis.url(), "");
    // A muster of project demo, but its /status is not a StatusView.
    let (addr, server) = serve_status(r#"{"project": 7, "services": "none"}"#.to_string());
    let args = [
        "-p",
        "demo",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &addr,
        "status",
    ];
    let check_warning = |out: &Output| {
        let err = String::from_utf8_lossy(&out.stderr);
        for part in [
            format!("warning: the muster at {addr} answered /status with a body this muster cannot read"),
            "its view is NOT shown".to_string(),
            "run the same muster version".to_string(),
            "--direct".to_string(),
        ] {
            assert!(err.contains(&part), "{part:?} in {err}");
        }
    };

    let out = muster(&dir, &args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    check_warning(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cache = stdout
        .lines()
        .find(|l| l.starts_with("cache"))
        .expect("cache row");
    assert!(cache.contains("ready") && cache.contains("PONG"), "{cache}");
    assert!(
        stdout.contains("1/1 required services ready (probed once now"),
        "{stdout}"
    );
    assert!(!stdout.contains("from the muster at"), "{stdout}");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = muster(&dir, &json_args);
    check_warning(&out);
    let snap: StackSnapshot =
        serde_json::from_slice(&out.stdout).expect("--json is a StackSnapshot");
    assert_eq!(snap.services["cache"].state, ServiceState::Ready);
    server.join().unwrap();
}
