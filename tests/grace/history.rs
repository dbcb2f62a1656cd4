//! Grace periods learned from real start-ups, on a real Docker engine with a
//! real Redis (or, when Redis is unreachable, the local state file):
//! - history recorded by `muster up` changes the effective start period once
//!   enough warm starts were seen (numbers checked against the samples);
//! - a service slower than its declared start_period but within the tuned
//!   one is never marked unready or failed while starting (and is, without
//!   the history);
//! - with Redis unreachable the samples go to the state file and a new
//!   process reads them back;
//! - a second `up` on the running, unchanged stack takes its containers over
//!   (`starting` with cause `adopted`) and records no start-up sample.

use crate::support::{self, DockerProject, RedisServer, TempDir, BUSYBOX_IMAGE};
use std::process::Stdio;
use std::time::Duration;

use crate::support::grace::*;
use serde_json::Value;

/// A busybox service that becomes ready `sleep` seconds after it starts,
/// checked by a muster exec probe every 500 ms that gives up after 2
/// failures (a 1 s failure window), with a declared start_period.
fn compose(service: &str, sleep: &str, start_period: &str) -> String {
    format!(
        r#"services:
  {service}:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "sleep {sleep}; touch /tmp/ready; exec sleep 100000"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      start_period: {start_period}
      interval: 1s
      retries: 3
    x-muster:
      probes:
        - exec: {{ command: ["test", "-f", "/tmp/ready"] }}
          period: 500ms
          failure_threshold: 2
"#
    )
}

fn samples_in_redis(redis: &RedisServer, key: &str) -> Vec<u64> {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "LRANGE", key, "0", "-1"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a sample is JSON");
            v["ms"].as_u64().expect("ms")
        })
        .collect()
}

#[test]
fn learned_history_changes_the_effective_period_after_n_starts() {
    support::ensure_test_images();
    let project = DockerProject::new("gracelearn");
    let redis = RedisServer::start();
    let dir = TempDir::new("muster-grace-learn");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, compose("app", "2", "1s")).unwrap();
    let state = dir.path().join("state.json");
    let ns = "learn";
    let cmd = || {
        let mut c = muster(&redis.url(), ns, &state);
        c.arg("-f").arg(&file).args(["-p", &project.name]);
        c
    };

    let min_samples = 5;
    let mut periods = Vec::new();
    // One cold start, then warm ones until five are recorded.
    for start in 1..=min_samples + 1 {
        let up = run_ok(cmd().args(["up", "--wait-timeout", "60s"]));
        // muster's warnings (e.g. a sample not recorded) say why a count is off.
        let warnings = String::from_utf8_lossy(&up.stderr).into_owned();
        run_ok(cmd().arg("down"));
        let app = tune_json(cmd())["app"].clone();
        let grace = &app["grace"];
        assert_eq!(
            grace["cold_samples"], 1,
            "start {start}: {grace}\n{warnings}"
        );
        assert_eq!(
            grace["warm_samples"],
            start - 1,
            "start {start}: {grace}\nup's stderr:\n{warnings}"
        );
        // Same image: the next start is warm.
        assert_eq!(grace["next_start"], "warm", "{grace}");
        periods.push(grace["period_ms"].as_u64().unwrap());
        if start - 1 < min_samples {
            // Too few warm samples, one cold one, a small image: the declared 1 s.
            assert_eq!(grace["period_ms"], 1000, "start {start}: {grace}");
            assert_eq!(grace["source"], "declared", "{grace}");
        } else {
            let warm = samples_in_redis(&redis, &format!("{ns}:{}:startup:app:warm", project.name));
            assert_eq!(warm.len(), min_samples);
            for ms in &warm {
                // Each start-up took at least the 2 s the container sleeps.
                assert!(*ms >= 2000 && *ms < 30_000, "sample {ms} ms");
            }
            // The 1 s failure window: 2 failures × 500 ms.
            let (p95, expected) = expected_learned_ms(&warm, 1.5, 1000);
            assert_eq!(grace["learned"]["kind"], "warm", "{grace}");
            assert_eq!(grace["learned"]["samples"], min_samples, "{grace}");
            assert_eq!(grace["learned"]["p95_ms"], p95, "{grace}");
            assert_eq!(grace["period_ms"], expected, "{grace}");
            assert_eq!(grace["source"], "learned", "{grace}");
            assert!(
                expected > 1000,
                "the learned period is longer than declared"
            );
            let reason = grace["reasons"][0].as_str().unwrap();
            assert!(reason.starts_with("5 warm samples, p95"), "{reason}");
        }
    }
    eprintln!("effective period after each start (ms): {periods:?}");
}

#[test]
fn slow_start_within_the_tuned_period_is_never_marked_unready_or_failed() {
    support::ensure_test_images();
    let project = DockerProject::new("graceslow");
    let redis = RedisServer::start();
    let dir = TempDir::new("muster-grace-slow");
    let file = dir.path().join("compose.yaml");
    // Ready after 6 s; the declared start_period is 2 s.
    std::fs::write(&file, compose("slow", "6", "2s")).unwrap();
    let state = dir.path().join("state.json");
    let cmd = |ns: &str| {
        let mut c = muster(&redis.url(), ns, &state);
        c.arg("-f").arg(&file).args(["-p", &project.name]);
        c
    };

    // Without history: the declared 2 s (+1 s failure window) runs out and
    // muster reports the service unready before it is ready.
    let out = run_ok(cmd("untuned").args(["--json", "up", "--wait-timeout", "60s"]));
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["service"] == "slow" && e["to"] == "unready"),
        "without history the slow start is flagged: {events:?}"
    );
    run_ok(cmd("untuned").arg("down"));

    // With history: one cold start and five warm ones of 6.0–6.8 s.
    let image = image_id(BUSYBOX_IMAGE);
    let seeded = [6_100, 6_000, 6_200, 6_400, 6_800, 6_300];
    seed_samples(
        &redis.url(),
        "tuned",
        &project.name,
        "slow",
        &image,
        &seeded,
    );
    let (_, expected) = expected_learned_ms(&seeded[1..], 1.5, 1000);
    assert!(expected >= 9_000, "tuned period {expected} ms");

    let port = support::free_port();
    let child = cmd("tuned")
        .args(["--json", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["up", "--serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let starting = wait_service(port, "slow", Duration::from_secs(60), |s| {
        s["state"] == "starting" || s["state"] == "ready"
    });
    assert_eq!(starting["grace_ms"], expected, "{starting}");
    let reason = starting["grace_reasons"][0].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("5 warm samples, p95 6.8 s × 1.5"),
        "{starting}"
    );

    let ready = wait_service(port, "slow", Duration::from_secs(60), |s| {
        s["state"] == "ready"
    });
    let states: Vec<&str> = ready["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert!(
        !states.contains(&"unready") && !states.contains(&"failed"),
        "never unready or failed while starting: {states:?}"
    );
    assert_eq!(states.last(), Some(&"ready"), "{states:?}");
    // The start took longer than declared and less than the tuned period.
    let started = ready["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|t| t["to"] == "starting")
        .unwrap()["at_ms"]
        .as_u64()
        .unwrap();
    let took = ready["since_ms"].as_u64().unwrap() - started;
    assert!(took > 3_000 && took < expected, "start-up took {took} ms");

    // The running muster recorded this start as a sixth warm sample.
    let key = format!("tuned:{}:startup:slow:warm", project.name);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while samples_in_redis(&redis, &key).len() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "the start was not recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let newest = samples_in_redis(&redis, &key)[0];
    assert!(newest > 3_000 && newest < expected, "recorded {newest} ms");
    let _ = child.0.kill();
}

#[test]
fn up_on_a_running_stack_adopts_its_containers_and_records_no_sample() {
    support::ensure_test_images();
    let project = DockerProject::new("graceadopt");
    let redis = RedisServer::start();
    let dir = TempDir::new("muster-grace-adopt");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, compose("app", "1", "1s")).unwrap();
    let state = dir.path().join("state.json");
    let cmd = || {
        let mut c = muster(&redis.url(), "adopt", &state);
        c.arg("-f").arg(&file).args(["-p", &project.name]);
        c
    };
    let starting = |out: &std::process::Output| -> Vec<Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["service"] == "app" && e["to"] == "starting")
            .collect()
    };

    // A real start: one cold sample, and its `starting` carries no cause.
    let first = run_ok(cmd().args(["--json", "up", "--wait-timeout", "60s"]));
    let events = starting(&first);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].get("cause").is_none(), "{events:?}");
    let grace = tune_json(cmd())["app"]["grace"].clone();
    assert_eq!(grace["cold_samples"], 1, "{grace}");
    assert_eq!(grace["warm_samples"], 0, "{grace}");

    // `up` again on the running stack: nothing starts, the container is
    // taken over, and no (warm) start-up sample of a few ms is recorded.
    let again = run_ok(cmd().args(["--json", "up", "--wait-timeout", "60s"]));
    let warnings = String::from_utf8_lossy(&again.stderr).into_owned();
    let events = starting(&again);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["cause"], "adopted", "{events:?}");
    assert_eq!(events[0]["reason"], "running (unchanged)", "{events:?}");
    let grace = tune_json(cmd())["app"]["grace"].clone();
    assert_eq!(grace["cold_samples"], 1, "{grace}\n{warnings}");
    assert_eq!(grace["warm_samples"], 0, "{grace}\n{warnings}");
    let warm = samples_in_redis(&redis, &format!("adopt:{}:startup:app:warm", project.name));
    assert!(warm.is_empty(), "no warm sample: {warm:?}");

    // After a real restart the next start is a warm one, and recorded.
    run_ok(cmd().arg("down"));
    run_ok(cmd().args(["up", "--wait-timeout", "60s"]));
    run_ok(cmd().arg("down"));
    let grace = tune_json(cmd())["app"]["grace"].clone();
    assert_eq!(grace["warm_samples"], 1, "{grace}");
}

#[test]
fn unreachable_redis_uses_the_state_file_and_history_survives_a_new_process() {
    support::ensure_test_images();
    let project = DockerProject::new("gracefile");
    let dir = TempDir::new("muster-grace-file");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, compose("app", "1", "1s")).unwrap();
    let state = dir.path().join("nested").join("state.json");
    // A loopback port nothing listens on.
    let closed = format!("redis://127.0.0.1:{}", support::free_port());
    let cmd = || {
        let mut c = muster(&closed, "muster", &state);
        c.arg("-f").arg(&file).args(["-p", &project.name]);
        c
    };

    let out = run_ok(cmd().args(["up", "--wait-timeout", "60s"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("using the local state file"),
        "the fallback is warned about: {stderr}"
    );
    run_ok(cmd().arg("down"));
    let text = std::fs::read_to_string(&state).expect("the state file was written");
    let json: Value = serde_json::from_str(&text).unwrap();
    let key = format!("muster:{}:startup:app:cold", project.name);
    let cold = json["lists"][&key]
        .as_array()
        .expect("cold samples in the file");
    assert_eq!(cold.len(), 1, "{text}");
    assert!(cold[0]["ms"].as_u64().unwrap() >= 1000, "{text}");
    assert_eq!(cold[0]["image"], image_id(BUSYBOX_IMAGE));

    // A new process reads it back, and a second start is added as warm.
    let app = tune_json(cmd())["app"].clone();
    assert_eq!(app["grace"]["cold_samples"], 1, "{app}");
    assert_eq!(app["grace"]["next_start"], "warm", "{app}");
    let up = run_ok(cmd().args(["up", "--wait-timeout", "60s"]));
    let warnings = String::from_utf8_lossy(&up.stderr).into_owned();
    run_ok(cmd().arg("down"));
    let app = tune_json(cmd())["app"].clone();
    assert_eq!(app["grace"]["cold_samples"], 1, "{app}\n{warnings}");
    assert_eq!(
        app["grace"]["warm_samples"], 1,
        "{app}\nup's stderr:\n{warnings}"
    );
}
