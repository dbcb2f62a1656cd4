//! `muster tune`: the values per service and why, `--write FILE` as a compose
//! override that docker-compose accepts and muster's own loader loads back
//! with the same values; bad grace settings are errors naming file and field.

use crate::support::{self, RedisServer, TempDir, BUSYBOX_IMAGE};
use std::process::Command;

use crate::support::grace::*;
use serde_json::Value;

fn compose_text() -> String {
    format!(
        r#"services:
  api:
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "3600"]
    healthcheck:
      test: ["CMD", "true"]
      start_period: 5s
      interval: 2s
      timeout: 1s
      retries: 4
  worker:
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "3600"]
    x-muster:
      probes:
        - exec: {{ command: ["true"] }}
          period: 1s
          failure_threshold: 3
  pinned:
    image: {BUSYBOX_IMAGE}
    x-muster:
      grace: 45s
"#
    )
}

/// docker-compose 1.x, else `docker compose`, when either is installed.
fn docker_compose() -> Option<Vec<&'static str>> {
    let works = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&["docker-compose", "version"]) {
        Some(vec!["docker-compose"])
    } else if works(&["docker", "compose", "version"]) {
        Some(vec!["docker", "compose"])
    } else {
        None
    }
}

#[test]
fn tune_write_output_loads_back_and_matches() {
    support::ensure_test_images();
    let redis = RedisServer::start();
    let dir = TempDir::new("muster-grace-tune");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, compose_text()).unwrap();
    let state = dir.path().join("state.json");
    let project = format!("gracetune{}", std::process::id());
    // worker has learned warm starts: 1 cold, then 7 warm of 20–31 s.
    let warm = [20_000, 22_500, 31_000, 24_000, 26_000, 21_000, 23_000];
    let mut seeded = vec![90_000];
    seeded.extend(warm);
    seed_samples(
        &redis.url(),
        "tune",
        &project,
        "worker",
        &image_id(BUSYBOX_IMAGE),
        &seeded,
    );
    let out_file = dir.path().join("grace.override.yaml");
    let cmd = || {
        let mut c = muster(&redis.url(), "tune", &state);
        c.arg("-f").arg(&file).args(["-p", &project]);
        c
    };

    let out = run_ok(cmd().args(["--json", "tune", "--write"]).arg(&out_file));
    let tuned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tuned["written"], out_file.display().to_string());
    assert!(
        tuned["history"].as_str().unwrap().starts_with("redis "),
        "{tuned}"
    );
    let services: serde_json::Map<String, Value> = tuned["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["service"].as_str().unwrap().to_string(), s.clone()))
        .collect();

    // The numbers, from what is declared and what was learned.
    let api = &services["api"]["healthcheck"];
    assert_eq!(api["start_period"], "5s");
    assert_eq!(api["interval"], "2s");
    assert_eq!(api["timeout"], "1s");
    assert_eq!(api["retries"], 4);
    assert_eq!(services["api"]["grace"]["source"], "declared");
    // worker: warm p95 31 s × 1.5 less its 3 s failure window = 43.5 s,
    // written as 44s (whole seconds, rounded up).
    let (p95, expected) = expected_learned_ms(&warm, 1.5, 3000);
    assert_eq!(p95, 31_000);
    assert_eq!(expected, 43_500);
    let worker = &services["worker"];
    assert_eq!(worker["grace"]["period_ms"], expected, "{worker}");
    assert_eq!(worker["grace"]["source"], "learned");
    assert_eq!(worker["healthcheck"]["start_period"], "44s");
    assert_eq!(worker["healthcheck"]["interval"], "30s", "Docker's default");
    assert_eq!(worker["has_test"], false);
    assert_eq!(services["pinned"]["healthcheck"]["start_period"], "45s");
    assert_eq!(services["pinned"]["grace"]["source"], "fixed");

    // muster's own loader reads the override back with the same values.
    let out = run_ok(
        cmd()
            .arg("-f")
            .arg(&out_file)
            .args(["--json", "config", "--model"]),
    );
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, t) in &services {
        let loaded = &merged["services"][name]["healthcheck"];
        for key in ["start_period", "interval", "timeout", "retries"] {
            assert_eq!(loaded[key], t["healthcheck"][key], "{name}.{key}: {loaded}");
        }
    }
    // The test of api's own healthcheck is kept.
    assert_eq!(
        merged["services"]["api"]["healthcheck"]["test"]["kind"],
        "CMD"
    );

    // docker-compose accepts the file too (1.x here: no start_interval key).
    match docker_compose() {
        Some(dc) => {
            let out = Command::new(dc[0])
                .args(&dc[1..])
                .arg("-f")
                .arg(&file)
                .arg("-f")
                .arg(&out_file)
                .args(["-p", &project, "config"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{dc:?} config: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("start_period: 44s"), "{text}");
            assert!(text.contains("start_period: 45s"), "{text}");
        }
        None => eprintln!("neither docker-compose nor docker compose is installed: not checked"),
    }

    // The readable form: a table, then the reasons per service.
    let out = run_ok(cmd().args(["tune", "worker"]));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("SERVICE"), "{text}");
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("worker") && row.contains("44s") && row.contains("learned"),
        "{text}"
    );
    assert!(
        text.contains("7 warm samples, p95 31 s × 1.5 − 3 s failure window → 43.5 s"),
        "{text}"
    );
    assert!(!text.contains("\napi "), "only the named service: {text}");
}

#[test]
fn tune_names_an_unknown_service() {
    let dir = TempDir::new("muster-grace-unknown");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, compose_text()).unwrap();
    let out = muster("redis://127.0.0.1:1", "x", &dir.path().join("s.json"))
        .arg("-f")
        .arg(&file)
        .args(["tune", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such service: nosuch") && err.contains("api, pinned, worker"),
        "{err}"
    );
}

#[test]
fn bad_grace_settings_name_file_and_field() {
    let dir = TempDir::new("muster-grace-bad");
    let state = dir.path().join("s.json");
    let compose_file = dir.path().join("compose.yaml");
    std::fs::write(&compose_file, compose_text()).unwrap();
    let run = |config: Option<&std::path::Path>, compose: &std::path::Path| {
        let mut c = muster("redis://127.0.0.1:1", "x", &state);
        if let Some(config) = config {
            c.arg("--config").arg(config);
        }
        let out = c.arg("-f").arg(compose).arg("tune").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stdout.is_empty(), "nothing printed on stdout");
        String::from_utf8_lossy(&out.stderr).to_string()
    };

    // config/muster.yaml's grace: section.
    let config = dir.path().join("muster.yaml");
    for (yaml, field) in [
        ("grace:\n  margin: 0.8\n", "grace.margin (line 2)"),
        ("grace:\n  margin: lots\n", "grace.margin (line 2)"),
        ("grace:\n  size_per_gb: 16\n", "grace.size_per_gb (line 2)"),
        ("grace:\n  min_samples: 0\n", "grace.min_samples (line 2)"),
    ] {
        std::fs::write(&config, yaml).unwrap();
        let err = run(Some(&config), &compose_file);
        assert!(
            err.contains("muster.yaml") && err.contains(field),
            "{yaml}: {err}"
        );
    }
    std::fs::write(&config, "grace:\n  marginn: 2\n").unwrap();
    let err = run(Some(&config), &compose_file);
    assert!(
        err.contains("muster.yaml") && err.contains("marginn"),
        "{err}"
    );
    // A service's grace in config/muster.yaml.
    std::fs::write(&config, "services:\n  api:\n    grace: soon\n").unwrap();
    let err = run(Some(&config), &compose_file);
    assert!(
        err.contains("muster.yaml")
            && err.contains("line 3")
            && err.contains("grace must be auto, off or a duration"),
        "{err}"
    );

    // x-muster.grace in the compose file.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "services:\n  api:\n    image: {BUSYBOX_IMAGE}\n    x-muster:\n      grace: soon\n"
        ),
    )
    .unwrap();
    let err = run(None, &bad);
    assert!(
        err.contains("bad.yaml:5") && err.contains("services.api.x-muster.grace"),
        "{err}"
    );
}
