//! `muster logs` against real containers: every replica's lines with
//! `service-N  | ` prefixes, `--tail`, `--json`, `--timestamps`, bad input,
//! and `-f` following a container that the engine restarts.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, text, DockerProject, KillOnDrop, Muster, TempDir, BUSYBOX_IMAGE};

/// A stack of two web replicas and one db, each saying a known line on
/// stdout and one on stderr, then sleeping.
fn stack(dir: &TempDir) -> PathBuf {
    support::write_compose(
        dir,
        &format!(
            r#"
services:
  web:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo web says hello; echo web complains >&2; exec sleep 100000"]
    deploy: {{ replicas: 2 }}
  db:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo db started; exec sleep 100000"]
"#
        ),
    )
}

fn muster(dir: &TempDir, file: &PathBuf, project: &DockerProject) -> Muster {
    let mut m = Muster::new().dir(dir.path());
    m.arg("-f").arg(file).args(["-p", &project.name]);
    m
}

/// Waits until every container has written its lines (the engine has them
/// once the shell has run its echo commands).
fn wait_for_lines(dir: &TempDir, file: &PathBuf, project: &DockerProject, want: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = muster(dir, file, project).run(&["logs"]);
        let all = String::from_utf8_lossy(&out.stdout).to_string();
        if all.lines().count() >= want {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "never {want} lines: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn logs_prefix_every_replica_and_follow_a_restarted_container() {
    support::ensure_test_images();
    let project = DockerProject::new("logs");
    let dir = TempDir::new("muster-logs");
    let file = stack(&dir);
    let out = muster(&dir, &file, &project).run(&["up", "--wait-timeout", "60s"]);
    assert!(out.status.success(), "up: {}", text(&out));

    // All services, all replicas, stdout and stderr, prefixes padded to the
    // widest; no colour codes on a pipe.
    let all = wait_for_lines(&dir, &file, &project, 5);
    let mut lines: Vec<&str> = all.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "db-1   | db started",
            "web-1  | web complains",
            "web-1  | web says hello",
            "web-2  | web complains",
            "web-2  | web says hello",
        ],
        "{all}"
    );
    assert!(!all.contains('\x1b'), "no colour on a pipe: {all:?}");

    // One service, the last line of each container.
    let out = muster(&dir, &file, &project).run(&["logs", "web", "--tail", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let web = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(web.lines().count(), 2, "{web}");
    assert!(web.lines().all(|l| l.starts_with("web-")), "{web}");

    // --timestamps: the engine's RFC 3339 time after the prefix.
    let out = muster(&dir, &file, &project).run(&["logs", "db", "--timestamps"]);
    let db = String::from_utf8_lossy(&out.stdout).to_string();
    let stamped = db
        .strip_prefix("db-1  | ")
        .unwrap_or_else(|| panic!("{db}"));
    assert!(
        stamped.starts_with("20")
            && stamped.contains('T')
            && stamped.trim_end().ends_with("db started"),
        "{db}"
    );

    // --json: one object per line, with the stream.
    let out = muster(&dir, &file, &project).run(&["--json", "logs", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(objects.len(), 4, "{objects:?}");
    let complaint = objects
        .iter()
        .find(|o| o["line"] == "web complains")
        .unwrap_or_else(|| panic!("{objects:?}"));
    assert_eq!(complaint["stream"], "stderr");
    assert_eq!(complaint["service"], "web");
    assert!(complaint["container"]
        .as_str()
        .unwrap()
        .starts_with(&project.name));

    // Bad input: an unknown service is named with the known ones (exit 1);
    // a bad --since or --tail is a usage error (exit 2).
    let out = muster(&dir, &file, &project).run(&["logs", "wbe"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"wbe\"") && err.contains("db, web"), "{err}");
    let out = muster(&dir, &file, &project).run(&["logs", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("42m"), "{}", text(&out));
    let out = muster(&dir, &file, &project).run(&["logs", "--tail", "few"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // -f (after `logs`: follow; before it, `-f` stays the compose file):
    // the db container is restarted by the engine and its new output shows.
    let mut follow = muster(&dir, &file, &project);
    follow
        .args(["logs", "-f", "db"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = follow.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = KillOnDrop(child);
    let rx = support::stdout_lines(stdout);
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no {what} line from logs -f"))
    };
    assert_eq!(next("first"), "db-1  | db started");
    let restarted = Command::new("docker")
        .args(["restart", "-t", "0", &format!("{}-db-1", project.name)])
        .output()
        .unwrap();
    assert!(restarted.status.success(), "{restarted:?}");
    assert_eq!(next("after the restart"), "db-1  | db started");
}
