//! Every connection muster keeps says its state (issue #15): the agent
//! watcher's Redis and NATS, the history store's Redis and the engine's
//! event stream are `links.*` in `/status` (`state`, `since_ms`,
//! `last_error`, `attempts`, `reconnects`), `muster_link_up` and
//! `muster_link_reconnects_total` in `/metrics`, and a line in `muster
//! status` while one is down. The state comes from the part that owns the
//! connection; these tests take the real servers away and bring them back.
//! Redis and NATS need passwords here, which must appear nowhere.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    self, http_get, text, KillOnDrop, Muster, NatsServer, RedisServer, TempDir, BUSYBOX_IMAGE,
};

const REDIS_PW: &str = "l1nk-r3dis-pw";
const NATS_PW: &str = "l1nk-n4ts-pw";

struct Serve {
    listen: u16,
    file: std::path::PathBuf,
    project: String,
    _dir: TempDir,
    _muster: KillOnDrop,
}

/// `muster serve` for a stack of one agent-probed service (no container is
/// needed: the links are what is looked at), with the test's Redis and NATS.
fn serve(redis: &RedisServer, nats: &NatsServer) -> Serve {
    let dir = TempDir::new("muster-links");
    let project = format!("mt{}links{}", std::process::id(), support::free_port());
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n  worker:\n    image: {BUSYBOX_IMAGE}\n    command: [\"sleep\", \"100000\"]\n    \
             x-muster:\n      probes:\n        - agent: {{ name: worker }}\n"
        ),
    )
    .unwrap();
    let listen = support::free_port();
    let redis_url = format!("redis://:{REDIS_PW}@127.0.0.1:{}", redis.port);
    let nats_url = format!("nats://ops:{NATS_PW}@127.0.0.1:{}", nats.port);
    let mut m = Muster::new().dir(dir.path());
    m.args(["-f", file.to_str().unwrap(), "-p", &project])
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--redis-url", &redis_url, "--nats-url", &nats_url, "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let muster = KillOnDrop(m.spawn().unwrap());
    Serve {
        listen,
        file,
        project,
        _dir: dir,
        _muster: muster,
    }
}

impl Serve {
    fn status(&self) -> Option<Value> {
        let (code, body) = http_get(self.listen, "/status")?;
        assert!(
            !body.contains(REDIS_PW) && !body.contains(NATS_PW),
            "a password in /status: {body}"
        );
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    }

    fn metrics(&self) -> String {
        let (_, body) = http_get(self.listen, "/metrics").expect("/metrics");
        assert!(
            !body.contains(REDIS_PW) && !body.contains(NATS_PW),
            "{body}"
        );
        body
    }

    /// Waits until `link` is in `state`; returns that link.
    fn wait_link(&self, link: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status();
            if let Some(l) = s.as_ref().map(|s| &s["links"][link]) {
                if l["state"] == state {
                    return l.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "links.{link} never {state}: {s:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `muster status` (plain text) against this muster.
    fn status_text(&self) -> String {
        let out = Muster::new().run(&[
            "-f",
            self.file.to_str().unwrap(),
            "-p",
            &self.project,
            "--listen",
            &format!("127.0.0.1:{}", self.listen),
            "status",
        ]);
        text(&out)
    }
}

fn line<'a>(metrics: &'a str, series: &str) -> Option<&'a str> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
}

#[test]
fn a_redis_outage_shows_in_links_metrics_and_status_then_clears() {
    let mut redis = RedisServer::start_with(&["--requirepass", REDIS_PW]);
    let nats = NatsServer::start_with(false, &["--user", "ops", "--pass", NATS_PW]);
    let m = serve(&redis, &nats);
    for link in ["redis", "history", "nats", "engine"] {
        m.wait_link(link, "connected");
    }
    assert_eq!(
        line(&m.metrics(), "muster_link_up{link=\"redis\"}"),
        Some("1")
    );

    let killed = muster::clock::now_ms();
    redis.kill();
    for link in ["redis", "history"] {
        let l = m.wait_link(link, "reconnecting");
        let since = l["since_ms"].as_u64().expect("since_ms");
        assert!(
            since + 1000 >= killed,
            "since {since} is before the kill {killed}: {l}"
        );
        let error = l["last_error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{link}: no last_error: {l}");
        assert!(l["attempts"].as_u64() >= Some(1), "{l}");
    }
    // The other links are not touched by a Redis outage.
    let s = m.status().unwrap();
    assert_eq!(s["links"]["nats"]["state"], "connected", "{s:#}");
    assert_eq!(s["links"]["engine"]["state"], "connected", "{s:#}");
    let metrics = m.metrics();
    assert_eq!(
        line(&metrics, "muster_link_up{link=\"redis\"}"),
        Some("0"),
        "{metrics}"
    );
    assert_eq!(
        line(&metrics, "muster_link_up{link=\"history\"}"),
        Some("0"),
        "{metrics}"
    );
    assert_eq!(
        line(&metrics, "muster_link_up{link=\"nats\"}"),
        Some("1"),
        "{metrics}"
    );
    let shown = m.status_text();
    assert!(
        shown.contains("coordination: reconnecting since ") && shown.contains("(redis: "),
        "{shown}"
    );
    assert!(!shown.contains(REDIS_PW), "{shown}");

    redis.restart();
    for link in ["redis", "history"] {
        let l = m.wait_link(link, "connected");
        assert_eq!(l["reconnects"], 1, "{link}: {l}");
        assert_eq!(l["attempts"], 0, "{link}: {l}");
    }
    let metrics = m.metrics();
    assert_eq!(
        line(&metrics, "muster_link_up{link=\"redis\"}"),
        Some("1"),
        "{metrics}"
    );
    assert_eq!(
        line(&metrics, "muster_link_reconnects_total{link=\"redis\"}"),
        Some("1"),
        "{metrics}"
    );
    let shown = m.status_text();
    assert!(!shown.contains("coordination:"), "{shown}");
}

#[test]
fn a_nats_outage_shows_in_links_and_metrics_then_clears() {
    let redis = RedisServer::start_with(&["--requirepass", REDIS_PW]);
    let mut nats = NatsServer::start_with(false, &["--user", "ops", "--pass", NATS_PW]);
    let m = serve(&redis, &nats);
    m.wait_link("nats", "connected");

    nats.kill();
    let l = m.wait_link("nats", "reconnecting");
    assert!(l["since_ms"].as_u64().is_some_and(|t| t > 0), "{l}");
    assert!(
        l["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{l}"
    );
    let metrics = m.metrics();
    assert_eq!(
        line(&metrics, "muster_link_up{link=\"nats\"}"),
        Some("0"),
        "{metrics}"
    );
    assert_eq!(
        line(&metrics, "muster_link_up{link=\"redis\"}"),
        Some("1"),
        "{metrics}"
    );
    let shown = m.status_text();
    assert!(
        shown.contains("coordination: reconnecting since ") && shown.contains("(nats: "),
        "{shown}"
    );

    nats.restart();
    let l = m.wait_link("nats", "connected");
    assert_eq!(l["reconnects"], 1, "{l}");
    let metrics = m.metrics();
    assert_eq!(
        line(&metrics, "muster_link_up{link=\"nats\"}"),
        Some("1"),
        "{metrics}"
    );
    assert_eq!(
        line(&metrics, "muster_link_reconnects_total{link=\"nats\"}"),
        Some("1"),
        "{metrics}"
    );
}
