//! Issue #15 item 4: `muster status` with the stack down said "0/0 required
//! services ready" and exited 0 when the services have no probes. Services
//! without probes are now judged by their containers.

use crate::support::{self, DockerProject, Muster, TempDir, BUSYBOX_IMAGE};

#[test]
fn status_of_a_stack_that_is_down_is_not_ready() {
    support::ensure_test_images();
    let project = DockerProject::new("stackdown");
    let dir = TempDir::new("muster-stackdown");
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n  web:\n    image: {BUSYBOX_IMAGE}\n    command: [\"sleep\", \"100000\"]\n  db:\n    image: {BUSYBOX_IMAGE}\n    command: [\"sleep\", \"100000\"]\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["-f", file.to_str().unwrap(), "-p", project.name.as_str()];
        all.extend_from_slice(args);
        Muster::new().dir(dir.path()).run(&all)
    };
    let out = run(&["status", "--direct"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("0/2 required services ready"), "{text}");
    assert!(text.contains("no running container"), "{text}");

    let up = run(&["up"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let out = run(&["status", "--direct"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("2/2 required services ready"), "{text}");

    // One service stopped by hand: the stack is not ready again.
    let stop = std::process::Command::new("docker")
        .args(["stop", "-t", "0", &format!("{}-db-1", project.name)])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{stop:?}");
    let out = run(&["status", "--direct", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"]["db"]["state"], "stopped", "{v:#}");
    assert_eq!(v["services"]["web"]["state"], "ready", "{v:#}");
    drop(project);
}
