//! Agents as processes: `muster demo-agent` killed with SIGKILL or stopped
//! with SIGTERM, and the client library across a Redis restart.

use crate::support::{self, Muster, RedisServer, TempDir};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use muster::signal::{AgentWatcher, Client, ClientOptions, Readiness, Source, WatcherConfig};

fn muster_cmd(url: &str, ns: &str) -> (Muster, TempDir) {
    let dir = TempDir::new("muster-agent");
    let mut cmd = Muster::new().dir(dir.path());
    cmd.args(["--redis-url", url, "--namespace", ns]);
    (cmd, dir)
}

fn check(url: &str, ns: &str, agent: &str) -> Output {
    let (mut cmd, _dir) = muster_cmd(url, ns);
    cmd.args(["check", "--agent", agent])
        .output()
        .expect("run muster check")
}

struct Agent(Child, #[allow(dead_code)] TempDir);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo_agent(url: &str, ns: &str, agent: &str, startup: &str, ttl: &str) -> Agent {
    let (mut cmd, dir) = muster_cmd(url, ns);
    let child = cmd
        .args([
            "demo-agent",
            "--agent",
            agent,
            "--startup",
            startup,
            "--ttl",
            ttl,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo-agent");
    Agent(child, dir)
}

/// Polls `muster check` until it returns `want` (exit code) or `within` passes.
fn wait_check(url: &str, ns: &str, agent: &str, want: i32, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    loop {
        let o = check(url, ns, agent);
        if o.status.code() == Some(want) || Instant::now() > deadline {
            return o;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send_signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn demo_agent_reports_progress_then_ready() {
    let redis = RedisServer::start();
    let url = redis.url();
    let _agent = demo_agent(&url, "d", "slow-agent", "3s", "10s");
    let o = wait_check(&url, "d", "slow-agent", 1, Duration::from_secs(5));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    // Within the start-up the check says what it is doing.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = err.contains("starting: loading model");
    while !seen && Instant::now() < deadline {
        let o = check(&url, "d", "slow-agent");
        seen = String::from_utf8_lossy(&o.stderr).contains("starting: loading model");
    }
    assert!(seen, "{err}");
    let o = wait_check(&url, "d", "slow-agent", 0, Duration::from_secs(10));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A SIGKILLed agent says nothing: it goes not ready because its key's TTL
/// runs out, which the watcher learns from the expiry notification (the
/// source and reason say so; how soon is the TTL's, not asserted here).
#[test]
fn sigkill_goes_unready_by_its_ttl_seen_by_expiry() {
    let redis = RedisServer::start();
    let url = redis.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Resync and poll far beyond the test: only the expiry notification can flip the view.
    let mut cfg = WatcherConfig::new(url.clone(), "k");
    cfg.resync_period = Duration::from_secs(3600);
    cfg.poll_period = Duration::from_secs(3600);
    let watcher = rt.block_on(async {
        let w = AgentWatcher::start(cfg).unwrap();
        assert!(w.wait_subscribed(Duration::from_secs(5)).await);
        w
    });
    let mut agent = demo_agent(&url, "k", "victim", "0s", "2s");
    let o = wait_check(&url, "k", "victim", 0, Duration::from_secs(10));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    send_signal(&agent.0, "-KILL");
    let _ = agent.0.wait();
    // Not ready once the 2 s TTL ran out (waited for generously).
    let o = wait_check(&url, "k", "victim", 1, support::HANG_GUARD);
    assert_eq!(o.status.code(), Some(1));
    let view = rt
        .block_on(watcher.wait_for("victim", support::HANG_GUARD, |r| !r.is_ready()))
        .expect("watcher saw the expiry");
    assert_eq!(view.source, Source::Expiry);
    assert!(view.readiness.reason().contains("expired"), "{:?}", view);
}

#[test]
fn sigterm_marks_not_ready_at_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut agent = demo_agent(&url, "g", "graceful", "0s", "30s");
    let o = wait_check(&url, "g", "graceful", 0, Duration::from_secs(10));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    send_signal(&agent.0, "-TERM");
    // The 30 s TTL is far away: only the agent's own not-ready can make this pass.
    let o = wait_check(&url, "g", "graceful", 1, Duration::from_secs(2));
    assert_eq!(o.status.code(), Some(1));
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let o = check(&url, "g", "graceful");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("stopped on SIGTERM"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reasserts_readiness_after_redis_restart() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let opts = ClientOptions {
        namespace: "r".into(),
        ttl: Duration::from_secs(2),
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&url, opts).await.unwrap();
    client.mark_ready("survivor", &[("v", "1")]).await.unwrap();
    client
        .mark_not_ready("sidekick", "waiting for survivor")
        .await
        .unwrap();
    assert!(client.read("survivor").await.unwrap().is_ready());

    // No persistence: the restarted Redis is empty.
    tokio::task::block_in_place(|| redis.restart());
    let fresh = muster::signal::read_signal_blocking(&url, "r", "survivor", Duration::from_secs(1))
        .unwrap();
    assert!(!fresh.is_ready(), "{fresh:?}");

    let deadline = Instant::now() + Duration::from_secs(6);
    let mut back = false;
    while Instant::now() < deadline {
        let r = muster::signal::read_signal_blocking(&url, "r", "survivor", Duration::from_secs(1));
        if matches!(r, Ok(ref r) if r.is_ready()) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        back,
        "the client did not re-assert readiness after the restart"
    );
    let r = client.read("sidekick").await.unwrap();
    assert_eq!(r.reason(), "waiting for survivor");
    match client.read("survivor").await.unwrap() {
        Readiness::Ready { meta, .. } => assert_eq!(meta["v"], "1"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_stops_when_the_client_drops() {
    let redis = RedisServer::start();
    let url = redis.url();
    let opts = ClientOptions {
        namespace: "hb".into(),
        ttl: Duration::from_millis(600),
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&url, opts).await.unwrap();
    client.mark_ready("a", &[]).await.unwrap();
    // Kept alive across several TTLs by the heartbeat.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(client.read("a").await.unwrap().is_ready());
    drop(client);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = muster::signal::read_signal_blocking(&url, "hb", "a", Duration::from_secs(1)).unwrap();
    assert!(!r.is_ready(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_bad_names_and_big_meta() {
    let redis = RedisServer::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let e = client
        .mark_ready("no spaces", &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid agent name"), "{e}");
    let big = "x".repeat(5000);
    let e = client
        .mark_ready("ok", &[("blob", &big)])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("4096"), "{e}");
    assert!(!client.read("ok").await.unwrap().is_ready());
    // Unreachable Redis: connect fails after its bounded retries instead of hanging.
    let port = support::free_port();
    let started = Instant::now();
    let r = Client::connect(&format!("redis://127.0.0.1:{port}")).await;
    assert!(r.is_err());
    assert!(started.elapsed() < support::HANG_GUARD);
}
