//! Helpers shared by the grace tests: the muster binary with its settings
//! pointed at a test Redis / state file, `muster tune --json`, a small HTTP
//! client for /status, and seeding start-up samples through the library.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use super::muster::run_ok;
pub use super::{http_get, KillOnDrop, Muster};

/// The grace coefficients these tests do their arithmetic with: margin 1.5
/// and 5 samples (the defaults are 1.4 and 10; see docs/readme/grace.md),
/// which also keeps the learning tests to six starts.
pub const TEST_GRACE_CONFIG: &str = "grace:\n  margin: 1.5\n  min_samples: 5\n";

/// The muster binary with Redis, namespace and state file set, probing
/// containers through published ports, the grace settings of
/// [`TEST_GRACE_CONFIG`] (a `--config` given later wins), and no stray
/// settings from the caller.
pub fn muster(redis_url: &str, namespace: &str, state_file: &Path) -> Muster {
    let mut cmd = Muster::new()
        .redis(redis_url)
        .namespace(namespace)
        .state_file(state_file);
    cmd.env("MUSTER_CONFIG", test_grace_config())
        .env("MUSTER_PROBE_ADDRESS", "host")
        .env("MUSTER_LOG", "warn");
    cmd
}

/// [`TEST_GRACE_CONFIG`] as a file, written once per test process (never
/// rewritten while a muster started by another test may read it).
fn test_grace_config() -> &'static Path {
    static CONFIG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("muster-test-grace-{}.yaml", std::process::id()));
        std::fs::write(&path, TEST_GRACE_CONFIG).expect("write the test muster.yaml");
        path
    })
}

/// `muster --json tune` → service name -> its entry.
pub fn tune_json(mut cmd: Muster) -> serde_json::Map<String, Value> {
    let out = run_ok(cmd.args(["--json", "tune"]));
    let v: Value = serde_json::from_slice(&out.stdout).expect("tune --json is JSON");
    v["services"]
        .as_array()
        .expect("services list")
        .iter()
        .map(|s| (s["service"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// The image ID of a local image.
pub fn image_id(image: &str) -> String {
    let out = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", image])
        .output()
        .expect("docker image inspect");
    assert!(out.status.success(), "no image {image}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Records start-up samples through muster's own history code, in order
/// (the first of an image is cold, the rest warm).
pub fn seed_samples(
    redis_url: &str,
    namespace: &str,
    project: &str,
    service: &str,
    image: &str,
    samples_ms: &[u64],
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let history = muster::history::HistoryStore::redis(redis_url, namespace, project)
            .await
            .expect("test Redis answers");
        for (i, ms) in samples_ms.iter().enumerate() {
            let at_ms = 1_000_000 + 100_000 * i as u64;
            muster::grace::record_start(&history, service, image, *ms, at_ms, 50)
                .await
                .expect("record a start-up");
        }
    });
}

/// Whole seconds, rounded up, in milliseconds.
pub fn ceil_secs_ms(ms: f64) -> u64 {
    ((ms / 1000.0).ceil() as u64) * 1000
}

/// muster's learned period from these samples, computed here from the rule
/// in docs/readme/grace.md: nearest-rank p95 × margin (to the millisecond)
/// less the failure window, at least the p95. Returns (p95, period) in ms.
pub fn expected_learned_ms(samples_ms: &[u64], margin: f64, window_ms: u64) -> (u64, u64) {
    let mut sorted = samples_ms.to_vec();
    sorted.sort();
    let rank = ((sorted.len() * 95) as f64 / 100.0).ceil() as usize;
    let p95 = sorted[rank.max(1) - 1];
    let allowed = (p95 as f64 * margin).round() as u64;
    (p95, allowed.saturating_sub(window_ms).max(p95))
}

/// Polls `/status/{service}` until `pred` holds; returns that status.
pub fn wait_service(
    port: u16,
    service: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_json(port, &format!("/status/{service}"), within, pred)
}

/// The JSON at `path` once `pred` holds for it (polled every 200 ms).
pub fn wait_json(port: u16, path: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some((200, body)) = http_get(port, path) {
            if let Ok(v) = serde_json::from_str::<Value>(&body) {
                if pred(&v) {
                    return v;
                }
                last = v;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{path} never matched within {within:?}; last: {last}");
}
