//! A service whose container exits by itself under `restart: "no"`: muster
//! says `failed` with an alert, and nothing a probe answers afterwards moves
//! it (issue #15 item 6: it went failed -> ready -> unready, on the probe's
//! counters from before the exit).

use crate::support::{self, http_get, DockerProject, RedisServer, TempDir, BUSYBOX_IMAGE};
use std::time::{Duration, Instant};

#[test]
fn an_exit_under_restart_no_stays_failed_with_an_alert() {
    support::ensure_test_images();
    let project = DockerProject::new("exitno");
    let redis = RedisServer::start();
    let dir = TempDir::new("muster-exitno");
    let listen = support::free_port();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            r#"
services:
  web:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "touch /tmp/up; sleep 4; exit 3"]
    restart: "no"
    x-muster:
      probes:
        - exec: {{ command: ["test", "-f", "/tmp/up"] }}
          period: 200ms
"#
        ),
    )
    .unwrap();
    let _child = crate::spawn_up_serve(dir.path(), &file, &project.name, listen, &redis.url());

    let state = || -> Option<serde_json::Value> {
        let (code, body) = http_get(listen, "/status")?;
        (code == 200).then(|| serde_json::from_str(&body).unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_ready = false;
    let failed = loop {
        if let Some(v) = state() {
            let web = &v["services"]["web"];
            seen_ready |= web["state"] == "ready";
            if web["state"] == "failed" {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "web never failed: {:?}", state());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen_ready, "web was never ready before it exited");
    let web = &failed["services"]["web"];
    assert!(
        web["reason"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{web:#}"
    );
    // The alert may follow the state by one healer pass.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = state().unwrap();
        let alerts = v["alerts"].as_array().unwrap();
        if alerts
            .iter()
            .any(|a| a.as_str().unwrap().contains("exited with code 3"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no alert: {v:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Probes go on failing against the dead container: it stays failed,
    // with no transition after the exit.
    std::thread::sleep(Duration::from_secs(2));
    let v = state().unwrap();
    let web = &v["services"]["web"];
    assert_eq!(web["state"], "failed", "{web:#}");
    let last = web["transitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["to"], "failed", "{web:#}");
    drop(project);
}
