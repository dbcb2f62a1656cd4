//! Grace after a pull. `up` decides every service's start period before it
//! pulls anything, so an image that is not on the engine yet could only get
//! the declared period, and the first start of a huge image (the one that
//! needs the size model most) was judged on a window far too short. The
//! supervisor now inspects the image again when the service starts and
//! stretches the open start window; and a missing image shared by several
//! services is one log line, not one per service.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::grace::wait_service;
use crate::support::registry::Registry;
use crate::support::{self, KillOnDrop, Muster};
use crate::{local_name, pushed, Stack};

/// The size model for every image of 10 MB or more: 30 s + 1 s per GB, so a
/// 40 MB image already gets its own period (a real 10 GB image would get
/// the same rule at the default 1 GB threshold).
const GRACE: &str = "grace:\n  size_min_gb: 0.01\n  size_base: 30s\n  size_per_gb: 1s\n";

/// Two services of one image, each with an exec probe that always fails and
/// no declared start period: without grace they go unready 1.5 s after start.
const SERVICE: &str = r#"x-muster:
  probes:
    - exec: { command: ["false"] }
      period: 500ms
      failure_threshold: 3
"#;

fn engine_size(image: &str) -> u64 {
    let out = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Size}}", image])
        .output()
        .expect("docker image inspect");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{image} is not on the engine"))
}

#[test]
fn a_pulled_images_size_decides_the_grace_of_its_first_start() {
    support::ensure_test_images();
    let registry = Registry::start();
    let (image, _guard) = pushed(
        &registry,
        &local_name("gracepull"),
        "muster/gracepull:1",
        40 << 20,
        2,
    );
    let stack = Stack::new(
        "gracepull",
        &[("app", &image, SERVICE), ("app2", &image, SERVICE)],
    );
    let config = stack.dir.path().join("muster.yaml");
    std::fs::write(&config, GRACE).unwrap();
    let log = stack.dir.path().join("muster.log");
    let port = support::free_port();
    let mut m = Muster::new();
    let file = stack.file.display().to_string();
    let listen = format!("127.0.0.1:{port}");
    m.args(["--config"])
        .arg(&config)
        .args(["--log", "info", "--listen", &listen, "-f", &file])
        .args(["-p", &stack.project.name, "up", "--serve"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let child = KillOnDrop(m.spawn().expect("muster up --serve"));

    // Pulled, started, and the period is the model's for the pulled size.
    let app = wait_service(port, "app", Duration::from_secs(180), |s| {
        s["state"] == "starting" && s["grace_ms"].as_u64().unwrap_or(0) >= 30_000
    });
    let size = engine_size(&image);
    let expected = (30.0 + size as f64 / 1e9).ceil() as u64 * 1000;
    assert_eq!(app["grace_ms"], expected, "{app}");
    let reasons = app["grace_reasons"].to_string();
    assert!(
        reasons.contains(&image) && reasons.contains("MB →"),
        "{reasons}"
    );

    // Well past the 1.5 s it would take without grace: both still starting,
    // their failures not counted.
    let since = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    for service in ["app", "app2"] {
        let s = wait_service(port, service, Duration::from_secs(10), |_| true);
        assert_eq!(
            s["state"],
            "starting",
            "{service} after {:?}: {s}",
            since.elapsed()
        );
        assert_eq!(s["grace_ms"], expected, "{s}");
        let transitions = s["transitions"].to_string();
        assert!(!transitions.contains("unready"), "{transitions}");
    }
    drop(child);

    // One line about the image that was not there yet, naming both services;
    // no per-service warning.
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let missing: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("not pulled yet"))
        .collect();
    assert_eq!(missing.len(), 1, "{text}");
    assert!(missing[0].contains("app, app2"), "{}", missing[0]);
    assert!(!text.contains("cannot be inspected"), "{text}");
    assert!(
        text.contains("decided again now that the image is on the engine"),
        "{text}"
    );
}
