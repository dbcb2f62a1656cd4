//! A muster killed with SIGKILL (the OOM killer, `kill -9`, a host
//! reboot of its container) and started again. Nothing of the first one may
//! linger in a way that makes the second act wrongly: no second container
//! for a service, no restart of a container that was fine, the supervisor
//! lock of the dead one taken over (not "already supervised" until it
//! lapses), and the start-up history it wrote still there.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    self, http_get, redis_cli, DockerProject, KillOnDrop, Muster, RedisServer, TempDir,
    BUSYBOX_IMAGE,
};
use serde_json::Value;

/// `db` is ready 2 s after it starts, `api` 1 s after (and waits for db),
/// `web` waits for api: an `up` takes a few seconds, long enough to be
/// killed in the middle. Each has a 20 s start period, so a slow start is
/// never a reason to restart it.
fn stack(dir: &TempDir) -> std::path::PathBuf {
    let svc = |name: &str, delay: &str, dep: Option<&str>| {
        let mut s = format!(
            r#"  {name}:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "sleep {delay}; touch /tmp/ready; exec sleep 100000"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 30s
      start_period: 20s
    x-muster:
      probes:
        - exec: {{ command: ["test", "-f", "/tmp/ready"] }}
          period: 200ms
"#
        );
        if let Some(dep) = dep {
            s.push_str(&format!(
                "    depends_on:\n      {dep}:\n        condition: service_healthy\n"
            ));
        }
        s
    };
    let yaml = format!(
        "services:\n{}{}{}",
        svc("db", "2", None),
        svc("api", "1", Some("db")),
        svc("web", "1", Some("api"))
    );
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, yaml).unwrap();
    file
}

/// The project's containers: (service, id, running, StartedAt, restart count).
fn containers(project: &DockerProject) -> Vec<(String, String, bool, String, u64)> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &project.label_filter()])
        .output()
        .expect("docker ps");
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut all = Vec::new();
    for id in ids {
        let out = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{index .Config.Labels \"com.docker.compose.service\"}} {{.Id}} {{.State.Running}} {{.State.StartedAt}} {{.RestartCount}}",
                &id,
            ])
            .output()
            .expect("docker inspect");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() == 5 {
            all.push((
                f[0].to_string(),
                f[1].to_string(),
                f[2] == "true",
                f[3].to_string(),
                f[4].parse().unwrap_or(0),
            ));
        }
    }
    all.sort();
    all
}

fn kill9(mut child: KillOnDrop) {
    // SIGKILL and reap: nothing of the first muster runs on.
    let _ = child.0.kill();
    let _ = child.0.wait();
}

#[test]
fn sigkill_during_up_then_up_again_makes_no_second_container() {
    support::ensure_test_images();
    let project = DockerProject::new("killup");
    let dir = TempDir::new("muster-killup");
    let file = stack(&dir);
    let args = ["-f", file.to_str().unwrap(), "-p", project.name.as_str()];
    let first = Muster::new()
        .dir(dir.path())
        .args(args)
        .arg("up")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = KillOnDrop(first);
    // Killed while db starts and api, web wait (created or not yet).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !containers(&project).iter().any(|c| c.0 == "db" && c.2) {
        assert!(Instant::now() < deadline, "db never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill9(first);
    let before = containers(&project);
    let db_before = before.iter().find(|c| c.0 == "db").unwrap().clone();

    let again = Instant::now();
    let out = Muster::new()
        .dir(dir.path())
        .run(&[&args[..], &["up"]].concat());
    let text = support::text(&out);
    assert!(out.status.success(), "second up failed: {text}");
    // For the README's fault table (not asserted: no timing in tests).
    eprintln!(
        "sigkill during up: the second up took {:?}",
        again.elapsed()
    );
    let after = containers(&project);
    let services: Vec<&str> = after.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(services, vec!["api", "db", "web"], "{after:?}");
    assert!(after.iter().all(|c| c.2), "not all running: {after:?}");
    // db was fine: the same container, not restarted.
    let db_after = after.iter().find(|c| c.0 == "db").unwrap();
    assert_eq!(
        (&db_after.1, &db_after.3, db_after.4),
        (&db_before.1, &db_before.3, 0),
        "db was recreated or restarted: {before:?} -> {after:?}"
    );
    // Containers the first up had created are used, not doubled.
    for c in &before {
        assert!(
            after.iter().any(|a| a.1 == c.1),
            "{} of the first up was replaced: {before:?} -> {after:?}",
            c.0
        );
    }
}

fn status(port: u16) -> Option<Value> {
    let (code, body) = http_get(port, "/status")?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

fn wait_all_ready(port: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = status(port) {
            let services = v["services"].as_object().cloned().unwrap_or_default();
            if services.len() == 3 && services.values().all(|s| s["state"] == "ready") {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not all ready within {within:?}: {:?}",
            status(port)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Start-up samples per service from `muster tune --json`: (cold, warm).
fn samples(muster: Muster, args: &[&str]) -> Vec<(String, u64, u64)> {
    let mut m = muster;
    let out = m.run(&[args, &["--json", "tune"]].concat());
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", support::text(&out)));
    let mut all: Vec<(String, u64, u64)> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_string(),
                s["grace"]["cold_samples"].as_u64().unwrap_or(0),
                s["grace"]["warm_samples"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn sigkill_during_serve_then_serve_again_takes_over_without_a_restart() {
    support::ensure_test_images();
    let project = DockerProject::new("killserve");
    let redis = RedisServer::start();
    let dir = TempDir::new("muster-killserve");
    let file = stack(&dir);
    let args = ["-f", file.to_str().unwrap(), "-p", project.name.as_str()];
    let muster = || Muster::new().dir(dir.path()).redis(&redis.url());
    let serve = |sub: &[&str]| {
        let port = support::free_port();
        let child = muster().stack(&file, &project.name, port).spawn_quiet(sub);
        (child, port)
    };
    let (first, port) = serve(&["up", "--serve"]);
    let first_pid = first.0.id();
    wait_all_ready(port, Duration::from_secs(60));
    // Each service's first start-up is recorded (cold) in Redis.
    let deadline = Instant::now() + Duration::from_secs(20);
    let recorded = loop {
        let s = samples(muster(), &args);
        if s.iter().all(|(_, cold, _)| *cold == 1) {
            break s;
        }
        assert!(Instant::now() < deadline, "samples never recorded: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let before = containers(&project);
    let lock_key = format!("mt{}:{}:lock:supervisor", std::process::id(), project.name);
    let held = redis_cli(redis.port, &["GET", &lock_key]);
    assert!(held.contains(&format!("pid {first_pid}")), "{held}");

    kill9(first);
    // The dead muster's lock is still in Redis (it never released it)...
    let held = redis_cli(redis.port, &["GET", &lock_key]);
    assert!(held.contains(&format!("pid {first_pid}")), "{held}");
    // ...and a new muster takes it over at once instead of refusing.
    let again = Instant::now();
    let (second, port) = serve(&["serve"]);
    let second_pid = second.0.id();
    let status = wait_all_ready(port, Duration::from_secs(30));
    eprintln!(
        "sigkill during serve: all ready under the new serve {:?} after its start",
        again.elapsed()
    );
    let held = redis_cli(redis.port, &["GET", &lock_key]);
    assert!(held.contains(&format!("pid {second_pid}")), "{held}");
    // A few healer passes later: nothing restarted, nothing recreated.
    std::thread::sleep(Duration::from_secs(3));
    let status_later = self::status(port).expect("/status");
    for (name, svc) in status_later["services"].as_object().unwrap() {
        assert_eq!(svc["state"], "ready", "{name}: {svc:#}");
        assert_eq!(svc["heal"]["muster_restarts"], 0, "{name}: {svc:#}");
    }
    let after = containers(&project);
    assert_eq!(before, after, "containers changed under the new muster");
    // History kept: the samples are there, and adopting a running stack
    // recorded no start-up.
    assert_eq!(samples(muster(), &args), recorded, "{status:#}");
    drop(second);
}
