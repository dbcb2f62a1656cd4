//! Resource telemetry (issue #18 item 8) through the binary on a real engine:
//! `muster up --serve` samples every running container's CPU and memory
//! (`--telemetry-interval`), shows them per service and per replica in
//! `/status` and as `muster_container_*` series in `/metrics`, and a
//! container the kernel kills for memory has its service's reason say so
//! with how far it got against its limit.

use crate::support::grace::{wait_json, wait_service};
use crate::support::{self, http_get, DockerProject, Muster, TempDir, BUSYBOX_IMAGE};
use std::time::Duration;

#[test]
fn cpu_memory_and_an_oom_kill_are_reported_per_container() {
    support::ensure_test_images();
    let project = DockerProject::new("resources");
    let dir = TempDir::new("muster-resources");
    // `hog` fills a tmpfs (charged to its memory cgroup) 1 MiB at a time up to
    // 40 MiB, so the sampler sees it grow, then `tail /dev/zero` runs past
    // the 64 MiB limit and the kernel kills it.
    let file = support::write_compose(
        &dir,
        &format!(
            r#"
services:
  steady:
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    deploy:
      resources:
        limits:
          memory: 32M
  hog:
    image: {BUSYBOX_IMAGE}
    restart: "no"
    tmpfs: ["/big"]
    stop_grace_period: 1s
    command: ["sh", "-c", "sleep 2; i=0; while [ $$i -lt 40 ]; do dd if=/dev/zero of=/big/f$$i bs=1048576 count=1 2>/dev/null; i=$$((i+1)); sleep 0.05; done; sleep 1; exec tail /dev/zero"]
    deploy:
      resources:
        limits:
          memory: 64M
"#
        ),
    );
    let port = support::free_port();
    let _muster = Muster::new()
        .dir(dir.path())
        .stack(&file, &project.name, port)
        .spawn_quiet(&["--telemetry-interval", "200ms", "up", "--serve"]);

    // steady: its limit, its memory, and a CPU ratio once sampled twice.
    let steady = format!("{}-steady-1", project.name);
    let status = wait_json(port, "/status", Duration::from_secs(60), |v| {
        v["resources"]["steady"]["replicas"][0]["cpu_ratio"].is_number()
    });
    let usage = &status["resources"]["steady"];
    assert_eq!(usage["memory_limit_bytes"], 32 * 1024 * 1024, "{usage:#}");
    let replica = &usage["replicas"][0];
    assert_eq!(replica["name"], steady.as_str());
    assert_eq!(replica["memory_limit_bytes"], 32 * 1024 * 1024);
    assert!(replica["memory_bytes"].as_u64() > Some(0), "{replica:#}");
    assert!(replica["cpu_ratio"].as_f64() >= Some(0.0), "{replica:#}");
    let source = replica["source"].as_str().unwrap_or_default();
    assert!(
        ["cgroup_v1", "cgroup_v2", "engine"].contains(&source),
        "{replica:#}"
    );
    assert!(status["resources_at_ms"].as_u64() > Some(0));
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    let labels = format!("{{service=\"steady\",container=\"{steady}\"}}");
    assert!(
        metrics.contains(&format!(
            "muster_container_memory_limit_bytes{labels} 33554432"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("muster_container_memory_bytes{labels} ")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("muster_container_cpu_ratio{labels} ")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("muster_container_oom_kills_total{labels} 0")),
        "{metrics}"
    );

    // hog: OOM-killed, and its reason says at how much of its limit.
    let v = wait_service(port, "hog", Duration::from_secs(90), |v| {
        v["reason"]
            .as_str()
            .is_some_and(|r| r.contains("OOM-killed"))
    });
    let reason = v["reason"].as_str().unwrap_or_default();
    eprintln!("hog's reason: {reason}");
    assert!(
        reason.contains("exited with code 137 (OOM-killed at ") && reason.contains(" of 64 MiB)"),
        "{reason}"
    );
    assert_eq!(v["heal"]["last_exit"]["oom_killed"], true, "{v:#}");
    let hog = format!("{}-hog-1", project.name);
    let replica = v["replicas"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == hog.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(replica["oom_kills"], 1, "{v:#}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains(&format!(
            "muster_container_oom_kills_total{{service=\"hog\",container=\"{hog}\"}} 1"
        )),
        "{metrics}"
    );
}
