//! Ctrl-C (SIGINT) and SIGTERM during a pull in `muster up`: the registry is
//! paused with SIGSTOP (a process this test started), so the pull hangs;
//! muster stops it, creates no container for the service, says so and exits
//! with code 1. Once the registry runs again, a second `up` pulls and starts
//! it. The same for a build (a `RUN sleep` step) interrupted by Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::build::{BuildStack, BUSYBOX};
use crate::support::registry::{image_present, Registry};
use crate::support::{text, KillOnDrop, Muster};
use crate::{local_name, pushed, Stack};

/// Containers of a project (`label=…` filter), running or not.
fn containers(filter: &str) -> usize {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", filter])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Starts `muster -f FILE -p PROJECT up`, waits for a line with `wanted`,
/// sends `signal`, and returns its exit code and whole stdout.
fn interrupted_up(file: &Path, project: &str, wanted: &str, signal: &str) -> (Option<i32>, String) {
    let mut muster = Muster::new();
    let file = file.display().to_string();
    muster
        .args(["-f", &file, "-p", project, "up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = muster.spawn().expect("start muster up");
    let stdout = child.stdout.take().expect("stdout");
    let mut child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while !seen.contains(wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(_) => panic!("no {wanted:?} line within 60 s: {seen}"),
        }
    }
    // Let the engine reach the (stopped) registry.
    std::thread::sleep(Duration::from_millis(700));
    let pid = child.0.id().to_string();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status.code();
        }
        assert!(
            Instant::now() < deadline,
            "muster up did not end within 30 s of SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    reader.join().expect("reader");
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    (code, seen)
}

#[test]
fn an_interrupted_pull_creates_nothing_and_the_next_up_resumes() {
    let registry = Registry::start();
    let (image, _guard) = pushed(&registry, &local_name("int"), "muster/int:1", 4 << 20, 1);
    let stack = Stack::new("pullint", &[("app", &image, "")]);

    registry.pause();
    for signal in ["INT", "TERM"] {
        let wanted = format!("pulling {image} (for app)");
        let (code, out) = interrupted_up(&stack.file, &stack.project.name, &wanted, signal);
        assert_eq!(code, Some(1), "SIG{signal}: {out}");
        assert!(
            out.contains(&format!(
                "interrupted while pulling {image}: no container created"
            )),
            "SIG{signal}: {out}"
        );
        assert!(out.contains("run up again to resume"), "SIG{signal}: {out}");
        assert_eq!(
            containers(&stack.project.label_filter()),
            0,
            "SIG{signal}: {out}"
        );
        assert!(!image_present(&image));
    }
    registry.resume();

    let out = stack.muster(Muster::new(), &["up"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("{image}: pulled")), "{all}");
    assert!(image_present(&image));
    assert_eq!(containers(&stack.project.label_filter()), 1, "{all}");
}

#[test]
fn an_interrupted_build_creates_nothing_and_the_next_up_builds() {
    let stack = BuildStack::new("buildint");
    stack.write(
        "app/Dockerfile",
        &format!("FROM {BUSYBOX}\nRUN sleep 6\nCMD [\"sleep\", \"100000\"]\n"),
    );
    let file = stack.compose("services:\n  app:\n    build: ./app\n    stop_grace_period: 1s\n");
    let filter = format!("label=com.docker.compose.project={}", stack.name());

    let (code, out) = interrupted_up(&file, stack.name(), "building", "INT");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("interrupted while building"), "{out}");
    assert!(out.contains("run up again to resume"), "{out}");
    assert_eq!(containers(&filter), 0, "{out}");

    let out = stack.muster(&["-p", stack.name(), "up"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(containers(&filter), 1, "{all}");
}
