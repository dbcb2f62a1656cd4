//! `muster signal` and `muster check` as a compose healthcheck runs them:
//! the real binary against a real redis-server.

use crate::support::{self, redis_cli, Muster, RedisServer};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs the real muster binary with explicit settings (no config file, no MUSTER_* env).
pub fn muster(url: &str, ns: &str, args: &[&str]) -> Output {
    let mut cmd = Muster::new();
    cmd.args(["--redis-url", url, "--namespace", ns]);
    cmd.run(args)
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn ready_then_check_exits_0() {
    let redis = RedisServer::start();
    let url = redis.url();
    let before = muster(&url, "t1", &["check", "--agent", "memory-agent"]);
    assert_eq!(code(&before), 1, "{}", stderr(&before));
    assert!(
        stderr(&before).contains("no ready signal"),
        "{}",
        stderr(&before)
    );

    let sig = muster(
        &url,
        "t1",
        &[
            "signal",
            "ready",
            "--agent",
            "memory-agent",
            "--meta",
            "model=small",
        ],
    );
    assert_eq!(code(&sig), 0, "{}", stderr(&sig));
    let check = muster(&url, "t1", &["check", "--agent", "memory-agent"]);
    assert_eq!(code(&check), 0, "{}", stderr(&check));

    // The value is the documented JSON, with a TTL of 30 s.
    let raw = redis_cli(redis.port, &["GET", "t1:ready:memory-agent"]);
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["meta"]["model"], "small");
    assert!(v["since"].as_u64().unwrap() > 1_600_000_000_000);
    let ttl: i64 = redis_cli(redis.port, &["PTTL", "t1:ready:memory-agent"])
        .parse()
        .unwrap();
    assert!(ttl > 25_000 && ttl <= 30_000, "{ttl}");

    // Another namespace does not see it.
    let other = muster(&url, "t2", &["check", "--agent", "memory-agent"]);
    assert_eq!(code(&other), 1);

    let json = muster(&url, "t1", &["--json", "check", "--agent", "memory-agent"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    assert_eq!(v["ready"], true);
    assert_eq!(v["status"], "ready");
}

#[test]
fn not_ready_with_reason_exits_1_and_prints_reason() {
    let redis = RedisServer::start();
    let url = redis.url();
    assert_eq!(
        code(&muster(&url, "m", &["signal", "ready", "--agent", "a1"])),
        0
    );
    let sig = muster(
        &url,
        "m",
        &[
            "signal",
            "not-ready",
            "--agent",
            "a1",
            "--reason",
            "broker connection lost",
        ],
    );
    assert_eq!(code(&sig), 0, "{}", stderr(&sig));
    let check = muster(&url, "m", &["check", "--agent", "a1"]);
    assert_eq!(code(&check), 1);
    assert!(
        stderr(&check).contains("broker connection lost"),
        "{}",
        stderr(&check)
    );
    assert_eq!(redis_cli(redis.port, &["EXISTS", "m:ready:a1"]), "0");

    // starting: not ready, with the progress text; --extend sets a deadline.
    let sig = muster(
        &url,
        "m",
        &[
            "signal",
            "starting",
            "--agent",
            "a1",
            "--progress",
            "loading model 40%",
            "--extend",
            "5m",
        ],
    );
    assert_eq!(code(&sig), 0, "{}", stderr(&sig));
    let check = muster(&url, "m", &["check", "--agent", "a1"]);
    assert_eq!(code(&check), 1);
    assert!(
        stderr(&check).contains("starting: loading model 40%"),
        "{}",
        stderr(&check)
    );
    let v: serde_json::Value =
        serde_json::from_str(&redis_cli(redis.port, &["GET", "m:ready:a1"])).unwrap();
    let deadline = v["deadline"].as_u64().unwrap();
    let since = v["since"].as_u64().unwrap();
    assert!(deadline >= since + 299_000, "{v}");

    // stopping: not ready.
    assert_eq!(
        code(&muster(&url, "m", &["signal", "stopping", "--agent", "a1"])),
        0
    );
    let check = muster(&url, "m", &["check", "--agent", "a1"]);
    assert_eq!(code(&check), 1);
    assert!(stderr(&check).contains("stopping"), "{}", stderr(&check));
}

#[test]
fn repeating_ready_keeps_since_and_heartbeat_refreshes() {
    let redis = RedisServer::start();
    let url = redis.url();
    assert_eq!(
        code(&muster(
            &url,
            "h",
            &["signal", "ready", "--agent", "b", "--ttl", "5s"]
        )),
        0
    );
    let first: serde_json::Value =
        serde_json::from_str(&redis_cli(redis.port, &["GET", "h:ready:b"])).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        code(&muster(
            &url,
            "h",
            &["signal", "ready", "--agent", "b", "--ttl", "5s"]
        )),
        0
    );
    let second: serde_json::Value =
        serde_json::from_str(&redis_cli(redis.port, &["GET", "h:ready:b"])).unwrap();
    assert_eq!(first["since"], second["since"]);

    redis_cli(redis.port, &["PEXPIRE", "h:ready:b", "1000"]);
    let hb = muster(
        &url,
        "h",
        &["signal", "heartbeat", "--agent", "b", "--ttl", "60s"],
    );
    assert_eq!(code(&hb), 0, "{}", stderr(&hb));
    let ttl: i64 = redis_cli(redis.port, &["PTTL", "h:ready:b"])
        .parse()
        .unwrap();
    assert!(ttl > 50_000, "{ttl}");

    // A heartbeat for an agent without a live signal fails and says what to do.
    let hb = muster(&url, "h", &["signal", "heartbeat", "--agent", "gone"]);
    assert_eq!(code(&hb), 1);
    assert!(stderr(&hb).contains("signal ready"), "{}", stderr(&hb));
}

#[test]
fn bad_names_big_meta_and_usage_errors_are_refused() {
    let redis = RedisServer::start();
    let url = redis.url();
    let long = "a".repeat(129);
    for bad in ["bad name", "a/b", "a:b", "ünï", long.as_str(), ""] {
        // A bad name is a usage error (exit 2) in every subcommand alike.
        for sub in [
            &["signal", "ready"][..],
            &["signal", "heartbeat"],
            &["check"],
        ] {
            let mut args = sub.to_vec();
            args.extend(["--agent", bad]);
            let o = muster(&url, "v", &args);
            assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
            assert!(stderr(&o).contains("invalid agent name"), "{}", stderr(&o));
        }
    }
    assert_eq!(
        code(&muster(
            &url,
            "v",
            &["signal", "ready", "--agent", &"a".repeat(128)]
        )),
        0
    );
    assert_eq!(redis_cli(redis.port, &["DBSIZE"]), "1");

    let big = format!("blob={}", "x".repeat(4200));
    let o = muster(
        &url,
        "v",
        &["signal", "ready", "--agent", "m", "--meta", &big],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("at most 4096"), "{}", stderr(&o));
    let o = muster(
        &url,
        "v",
        &["signal", "ready", "--agent", "m", "--meta", "novalue"],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("KEY=VALUE"), "{}", stderr(&o));
    assert_eq!(redis_cli(redis.port, &["EXISTS", "v:ready:m"]), "0");

    let o = muster(
        &url,
        "v",
        &["signal", "ready", "--agent", "m", "--ttl", "30 seconds"],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--ttl"), "{}", stderr(&o));
    assert_eq!(
        code(&muster(&url, "v", &["signal", "bogus", "--agent", "m"])),
        2
    );
    assert_eq!(code(&muster(&url, "v", &["check"])), 2);
    assert_eq!(
        code(&muster(&url, "v", &["check", "--agent", "a", "--self"])),
        2
    );
    assert_eq!(
        code(&muster(
            &url,
            "v",
            &["check", "--agent", "a", "--timeout", "soon"]
        )),
        2
    );
    // --redis checks the server itself: this one is up.
    let o = muster(&url, "v", &["check", "--redis", &url]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn corrupt_values_read_as_not_ready_corrupt_signal() {
    let redis = RedisServer::start();
    let url = redis.url();
    for (i, value) in [
        "not json at all",
        r#"{"status":"bogus","since":1}"#,
        r#"{"status":"ready"}"#,
        r#"{"status":"ready","since":"yesterday"}"#,
        "[1,2,3]",
    ]
    .iter()
    .enumerate()
    {
        let key = format!("c:ready:agent{i}");
        redis_cli(redis.port, &["SET", &key, value]);
        let o = muster(&url, "c", &["check", "--agent", &format!("agent{i}")]);
        assert_eq!(code(&o), 1, "{value}");
        assert!(
            stderr(&o).contains("corrupt signal"),
            "{value}: {}",
            stderr(&o)
        );
    }
    // A plain-text reason written by hand is read as the reason.
    redis_cli(
        redis.port,
        &["SET", "c:notready:plain", "waiting for the GPU"],
    );
    let o = muster(&url, "c", &["check", "--agent", "plain"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("waiting for the GPU"), "{}", stderr(&o));
}

#[test]
fn unreachable_redis_is_not_ready_without_the_password() {
    let port = support::free_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let o = muster(&url, "x", &["check", "--agent", "a", "--timeout", "500ms"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("cannot read the signal"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("hunter2"), "{}", stderr(&o));
}

#[test]
fn requirepass_and_acl_users_work_through_the_url() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let good = format!("redis://:s3cret@127.0.0.1:{}", redis.port);
    let bad = format!("redis://:wrong@127.0.0.1:{}", redis.port);
    let o = muster(&good, "p", &["signal", "ready", "--agent", "a"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(code(&muster(&good, "p", &["check", "--agent", "a"])), 0);
    let o = muster(&bad, "p", &["check", "--agent", "a"]);
    assert_eq!(code(&o), 1);
    assert!(!stderr(&o).contains("wrong@"), "{}", stderr(&o));
    let o = muster(&bad, "p", &["signal", "ready", "--agent", "a"]);
    assert_eq!(code(&o), 1);

    // An ACL user with only what the protocol needs (docs/readme/signal.md).
    let acl = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "-a",
            "s3cret",
            "--no-auth-warning",
        ])
        .args([
            "ACL",
            "SETUSER",
            "agent",
            "on",
            ">agentpw",
            "~p:*",
            "&p:events:*",
            "+get",
            "+mget",
            "+pexpire",
            "+eval",
            "+set",
            "+del",
            "+publish",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&acl.stdout).trim(), "OK");
    let user = format!("redis://agent:agentpw@127.0.0.1:{}", redis.port);
    let o = muster(
        &user,
        "p",
        &[
            "signal",
            "not-ready",
            "--agent",
            "b",
            "--reason",
            "warming up",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = muster(&user, "p", &["check", "--agent", "b"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("warming up"));
    assert_eq!(
        code(&muster(&user, "p", &["signal", "ready", "--agent", "b"])),
        0
    );
    assert_eq!(code(&muster(&user, "p", &["check", "--agent", "b"])), 0);
    assert_eq!(
        code(&muster(
            &user,
            "p",
            &["signal", "heartbeat", "--agent", "b"]
        )),
        0
    );
    // Keys outside the user's pattern are refused by Redis, and that is reported.
    let o = muster(&user, "other", &["signal", "ready", "--agent", "b"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).to_lowercase().contains("permission") || stderr(&o).contains("NOPERM"),
        "{}",
        stderr(&o)
    );
}

/// A stand-in for a running muster's health endpoint (plain HTTP, not one of
/// the real services tests must not mock): answers the given paths.
fn http_server(
    routes: Vec<(&'static str, u16, &'static str)>,
) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let n = routes.len();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut stream = stream.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 2048];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let len = stream.read(&mut buf).unwrap();
                assert!(len > 0, "request ended early");
                req.extend_from_slice(&buf[..len]);
            }
            let req = String::from_utf8_lossy(&req).to_string();
            let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, body) = routes
                .iter()
                .find(|(p, _, _)| *p == path)
                .map(|(_, s, b)| (*s, *b))
                .unwrap_or((404, "{}"));
            // Chunked on purpose: hyper answers this way too. The headers
            // say which stack this muster supervises (namespace "s", as the
            // checks below are run).
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nx-muster-project: demo\r\nx-muster-namespace: s\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            );
            stream.write_all(resp.as_bytes()).unwrap();
        }
    });
    (addr, handle)
}

#[test]
fn check_service_and_self_ask_the_health_endpoint() {
    let (addr, server) = http_server(vec![
        (
            "/status/api",
            200,
            r#"{"name":"api","state":"ready","reason":""}"#,
        ),
        ("/status/job", 200, r#"{"name":"job","state":"completed"}"#),
        (
            "/status/memory",
            200,
            r#"{"name":"memory","state":"starting","reason":"loading model 40%"}"#,
        ),
        ("/status/ghost", 404, r#"{"error":"unknown"}"#),
        ("/healthz", 200, r#"{"ok":true}"#),
    ]);
    let url = "redis://127.0.0.1:1";
    let run = |args: &[&str]| {
        let mut all = vec!["--listen", addr.as_str()];
        all.extend_from_slice(args);
        muster(url, "s", &all)
    };
    let o = run(&["check", "--service", "api"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(code(&run(&["check", "--service", "job"])), 0);
    let o = run(&["check", "--service", "memory"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("starting: loading model 40%"),
        "{}",
        stderr(&o)
    );
    let o = run(&["check", "--service", "ghost"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no service"), "{}", stderr(&o));
    assert_eq!(code(&run(&["check", "--self"])), 0);
    server.join().unwrap();
    // Nothing listens any more.
    let o = run(&["check", "--self", "--timeout", "500ms"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not reachable"), "{}", stderr(&o));
}
