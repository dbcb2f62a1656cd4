//! A locally built image of more than 1 GB (a big-file layer made here,
//! reused when it already exists) reaches the size model: `muster tune` and
//! a supervising `muster up --serve` both use the period the model gives for
//! its size, and the model's coefficients come from config/muster.yaml.

use crate::support::{self, DockerProject, TempDir, BUSYBOX_IMAGE};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::grace::*;

/// Tagged under muster-test/ and labelled like the other test images.
const BIG_IMAGE: &str = "muster-test/grace-big:1";
/// 1.1 GB of zeros on top of busybox.
const BIG_FILE_BYTES: u64 = 1_100_000_000;

fn image_size(image: &str) -> Option<u64> {
    let out = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Size}}", image])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Builds the big image unless it exists (the Dockerfile comes on stdin:
/// no build context, no registry).
fn ensure_big_image() -> u64 {
    support::ensure_test_images();
    if let Some(size) = image_size(BIG_IMAGE) {
        return size;
    }
    let dockerfile = format!(
        "FROM {BUSYBOX_IMAGE}\nRUN [\"/bin/busybox\", \"dd\", \"if=/dev/zero\", \"of=/big.bin\", \"bs=1000000\", \"count={}\"]\n",
        BIG_FILE_BYTES / 1_000_000
    );
    let mut child = Command::new("docker")
        .args([
            "build",
            "-q",
            "--label",
            "muster.test=1",
            "-t",
            BIG_IMAGE,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker build");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "building {BIG_IMAGE} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image_size(BIG_IMAGE).expect("the big image exists after the build")
}

fn compose() -> String {
    format!(
        r#"services:
  big:
    image: {BIG_IMAGE}
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "true"]
      start_period: 5s
    x-muster:
      probes:
        - exec: {{ command: ["true"] }}
          period: 500ms
"#
    )
}

/// base + per_gb × size in decimal GB, rounded up to whole seconds (the
/// model in docs/readme/grace.md).
fn model_ms(base_s: f64, per_gb_s: f64, size: u64) -> u64 {
    ceil_secs_ms((base_s + per_gb_s * size as f64 / 1e9) * 1000.0)
}

#[test]
fn a_one_gigabyte_image_reaches_the_size_model() {
    let size = ensure_big_image();
    assert!(size >= 1_000_000_000, "{BIG_IMAGE} is {size} bytes");
    let dir = TempDir::new("muster-grace-big");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, compose()).unwrap();
    let state = dir.path().join("state.json");
    // No history: Redis unreachable, an empty state file.
    let closed = format!("redis://127.0.0.1:{}", support::free_port());
    let project = DockerProject::new("gracebig");
    let cmd = |config: Option<&std::path::Path>| {
        let mut c = muster(&closed, "muster", &state);
        if let Some(config) = config {
            c.arg("--config").arg(config);
        }
        c.arg("-f").arg(&file).args(["-p", &project.name]);
        c
    };

    // Default coefficients: 10 s + 16 s per GB.
    let big = tune_json(cmd(None))["big"].clone();
    let grace = &big["grace"];
    assert_eq!(grace["image"]["size"], size, "{grace}");
    let expected = model_ms(10.0, 16.0, size);
    assert!(expected >= 26_000, "{expected}");
    assert_eq!(grace["size_model_ms"], expected, "{grace}");
    assert_eq!(grace["period_ms"], expected, "{grace}");
    assert_eq!(grace["source"], "image_size", "{grace}");
    assert_eq!(grace["next_start"], "cold", "{grace}");
    let reason = grace["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("image {BIG_IMAGE} 1.1 GB → {} s", expected / 1000)),
        "{reason}"
    );

    // Coefficients from config/muster.yaml.
    let config = dir.path().join("muster.yaml");
    std::fs::write(
        &config,
        "grace:\n  size_base: 20s\n  size_per_gb: 30s\n  size_min_gb: 0.5\n",
    )
    .unwrap();
    let grace = tune_json(cmd(Some(&config)))["big"]["grace"].clone();
    assert_eq!(
        grace["size_model_ms"],
        model_ms(20.0, 30.0, size),
        "{grace}"
    );
    assert_eq!(grace["period_ms"], model_ms(20.0, 30.0, size), "{grace}");
    // Over the threshold only: at 2 GB the image gets no size period.
    std::fs::write(&config, "grace:\n  size_min_gb: 2\n").unwrap();
    let grace = tune_json(cmd(Some(&config)))["big"]["grace"].clone();
    assert_eq!(grace["size_model_ms"], serde_json::Value::Null, "{grace}");
    assert_eq!(grace["period_ms"], 5000, "declared start_period: {grace}");

    // The supervisor uses the same period for the container it starts.
    let port = support::free_port();
    let child = cmd(None)
        .args(["--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["up", "--serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);
    let status = wait_service(port, "big", Duration::from_secs(60), |s| {
        s["state"] == "ready"
    });
    assert_eq!(status["grace_ms"], expected, "{status}");
    assert!(
        status["grace_reasons"][0]
            .as_str()
            .unwrap()
            .contains("1.1 GB →"),
        "{status}"
    );
}
