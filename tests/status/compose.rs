//! `muster status` with a compose file: the services' `x-muster` probes
//! (over config/muster.yaml's), run once against real redis-servers.

use std::process::Output;

use crate::support::{free_port, text, Muster, RedisServer, TempDir};
use muster::supervisor::{ServiceState, StackSnapshot};

fn muster(dir: &TempDir, args: &[&str]) -> Output {
    Muster::new().dir(dir.path()).run(args)
}

fn redis_service(name: &str, url: &str) -> String {
    format!(
        "  {name}:\n    image: redis:7\n    x-muster:\n      probes:\n        - redis: {{ url: \"{url}\" }}\n          timeout: 1s\n"
    )
}

fn snapshot(out: &Output) -> StackSnapshot {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json is a StackSnapshot ({e}): {}", text(out)))
}

#[test]
fn status_probes_the_compose_files_x_muster_probes() {
    let redis = RedisServer::start();
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let dir = TempDir::new("muster-status-compose");
    let file = dir.path().join("stack.yaml");
    std::fs::write(
        &file,
        format!(
            "name: statustest\nservices:\n{}{}  plain:\n    image: busybox\n",
            redis_service("cache", &redis.url()),
            redis_service("broken", &dead)
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let args = ["-f", f, "status", "--direct", "--probe-address", "network"];

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = muster(&dir, &json_args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let snap = snapshot(&out);
    assert_eq!(snap.project, "statustest");
    let cache = &snap.services["cache"];
    assert_eq!(cache.state, ServiceState::Ready, "{cache:?}");
    assert_eq!(cache.probes.len(), 1);
    assert_eq!(cache.probes[0].kind, "redis");
    assert_eq!(cache.image.as_deref(), Some("redis:7"));
    let broken = &snap.services["broken"];
    assert_eq!(broken.state, ServiceState::Unready, "{broken:?}");
    assert!(broken.required);
    assert!(broken.reason.contains("refused"), "{broken:?}");
    // No probe: judged by its containers (none run here), and required
    // (issue #15 item 4: it was "pending" and left out of the exit code).
    let plain = &snap.services["plain"];
    assert_eq!(plain.state, ServiceState::Stopped, "{plain:?}");
    assert_eq!(plain.reason, "no running container (no muster probe)");
    assert!(plain.required);
    assert!(plain.probes.is_empty());

    // The table says the same.
    let out = muster(&dir, &args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let row = |name: &str| {
        all.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row: {all}"))
            .to_string()
    };
    assert!(row("cache").contains("ready"), "{all}");
    assert!(row("broken").contains("unready"), "{all}");
    assert!(row("plain").contains("no muster probe"), "{all}");
    assert!(all.contains("1/3 required services ready"), "{all}");

    // Only the live service (and one without probes or a container that is
    // not required): ready, exit 0.
    std::fs::write(
        &file,
        format!(
            "name: statustest\nservices:\n{}  plain:\n    image: busybox\n    x-muster: {{ required: false }}\n",
            redis_service("cache", &redis.url())
        ),
    )
    .unwrap();
    let out = muster(&dir, &json_args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap = snapshot(&out);
    assert_eq!(snap.services.len(), 2);
    assert_eq!(snap.services["cache"].state, ServiceState::Ready);
}

#[test]
fn status_finds_the_compose_file_by_discovery() {
    let redis = RedisServer::start();
    let dir = TempDir::new("muster-status-discover");
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!("services:\n{}", redis_service("cache", &redis.url())),
    )
    .unwrap();
    let out = muster(
        &dir,
        &["status", "--direct", "--probe-address", "network", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(snapshot(&out).services["cache"].state, ServiceState::Ready);
}

#[test]
fn compose_x_muster_wins_over_muster_yaml() {
    let redis = RedisServer::start();
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let dir = TempDir::new("muster-status-precedence");
    let file = dir.path().join("compose.yaml");
    // cache: compose says live, muster.yaml says dead -> compose wins.
    // queue: no x-muster in compose, muster.yaml's probe (live) is used.
    std::fs::write(
        &file,
        format!(
            "services:\n{}  queue:\n    image: redis:7\n",
            redis_service("cache", &redis.url())
        ),
    )
    .unwrap();
    let config = dir.path().join("muster.yaml");
    std::fs::write(
        &config,
        format!(
            "services:\n  cache:\n    probes:\n      - redis: {{ url: \"{dead}\" }}\n  queue:\n    probes:\n      - redis: {{ url: \"{}\" }}\n",
            redis.url()
        ),
    )
    .unwrap();
    let out = muster(
        &dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
            "status",
            "--direct",
            "--probe-address",
            "network",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap = snapshot(&out);
    assert_eq!(snap.services["cache"].state, ServiceState::Ready);
    assert_eq!(snap.services["queue"].state, ServiceState::Ready);
    assert_eq!(snap.services["queue"].probes.len(), 1);
}

#[test]
fn compose_errors_exit_1_with_the_message() {
    let dir = TempDir::new("muster-status-compose-bad");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, "services:\n  cache:\n    image: [\n").unwrap();
    let out = muster(&dir, &["-f", file.to_str().unwrap(), "status", "--direct"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(err.contains("compose.yaml"), "{err}");

    // A missing -f file.
    let missing = dir.path().join("nope.yaml");
    let out = muster(
        &dir,
        &["-f", missing.to_str().unwrap(), "status", "--direct"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope.yaml"),
        "{}",
        text(&out)
    );

    // A bad x-muster probe names the compose file and the key.
    std::fs::write(
        &file,
        "services:\n  cache:\n    image: redis:7\n    x-muster:\n      probes:\n        - redis: { url: \"redis://x\", require: [pong] }\n",
    )
    .unwrap();
    let out = muster(&dir, &["-f", file.to_str().unwrap(), "status", "--direct"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        err.contains("compose.yaml:6:38: services.cache.x-muster.probes[0]")
            && err.contains("field `require`"),
        "{err}"
    );

    // A file the probe names that cannot be read: found after loading, and
    // still named by file, line and field.
    std::fs::write(
        &file,
        "services:\n  cache:\n    image: redis:7\n    x-muster:\n      probes:\n        - redis:\n            url: rediss://x\n            ca_file: /nonexistent/ca.pem\n",
    )
    .unwrap();
    let out = muster(&dir, &["-f", file.to_str().unwrap(), "status", "--direct"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        err.contains(
            "compose.yaml:8:13: services.cache.x-muster.probes[0]: redis probe: field `ca_file`"
        ) && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );

    // The same in config/muster.yaml: that file, its own path.
    std::fs::write(&file, "services:\n  cache:\n    image: redis:7\n").unwrap();
    let config = dir.path().join("muster.yaml");
    std::fs::write(
        &config,
        "services:\n  cache:\n    probes:\n      - redis: { url: \"redis://x\", ca_file: /tmp/ca.pem }\n",
    )
    .unwrap();
    let out = muster(
        &dir,
        &[
            "-f",
            file.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "status",
            "--direct",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        err.contains("muster.yaml:4:36: services.cache.probes[0]: redis probe: field `ca_file`"),
        "{err}"
    );
}
