//! `gpus:` and `deploy.resources.reservations.devices` on the real engine
//! (issue 17): they reach HostConfig `DeviceRequests` as docker/compose's
//! `pkg/compose/create.go` builds them (reservations first, their
//! capabilities as one AND list; then a `devices:` CDI name as a `cdi`
//! request; then gpus, with `gpu` added; `all` = -1).
//! This engine has no GPU runtime, so the container is created and its start
//! fails with the engine's own error, which `up` reports for the service; the
//! created container's HostConfig is what the test reads. And `label_file`:
//! the file's labels are on the container, `labels:` winning.

use super::{inspect_full, load_compose, up_compose, up_refused};
use crate::support::{self, DockerProject, TempDir, BUSYBOX_IMAGE};
use muster::engine::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpus_and_device_reservations_reach_the_engine_as_device_requests() {
    support::ensure_test_images();
    let engine = Engine::connect().await.expect("docker engine");
    let guard = DockerProject::new("gpus");
    let dir = TempDir::new("muster-gpus-up");
    let p = load_compose(
        &guard.name,
        &dir,
        &format!(
            "services:\n  app:\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'sleep 3600']\n\
             \x20   gpus: all\n    devices: [\"vendor.example.com/fpga=card0\"]\n    deploy:\n      resources:\n        reservations:\n\
             \x20         devices:\n            - capabilities: [compute, utility]\n\
             \x20             driver: nvidia\n              device_ids: [\"0\", \"1\"]\n\
             \x20             options: {{mig: \"1g.5gb\"}}\n"
        ),
        &[],
    );
    let message = up_refused(&engine, &p).await;
    // The engine's refusal at start, naming the device request it could not meet.
    assert!(
        message.contains("could not select device driver"),
        "{message}"
    );
    let info = inspect_full(&engine, &format!("{}-app-1", guard.name))
        .await
        .expect("the container was created");
    assert_ne!(info.state.and_then(|s| s.running), Some(true));
    let host = info.host_config.expect("HostConfig");
    let host_devices = host.devices;
    let requests = host.device_requests.expect("HostConfig.DeviceRequests");
    assert_eq!(requests.len(), 3, "{requests:?}");
    let reserved = &requests[0];
    assert_eq!(reserved.driver.as_deref(), Some("nvidia"));
    assert_eq!(
        reserved.device_ids,
        Some(vec!["0".to_string(), "1".to_string()])
    );
    assert_eq!(
        reserved.capabilities,
        Some(vec![vec!["compute".to_string(), "utility".to_string()]])
    );
    assert_eq!(
        reserved
            .options
            .as_ref()
            .and_then(|o| o.get("mig"))
            .map(String::as_str),
        Some("1g.5gb")
    );
    // A CDI device name in `devices:` is a request of driver `cdi`, between
    // the reservations and the gpus, and no device mapping.
    assert_eq!(requests[1].driver.as_deref(), Some("cdi"));
    assert_eq!(
        requests[1].device_ids,
        Some(vec!["vendor.example.com/fpga=card0".to_string()])
    );
    assert!(host_devices.unwrap_or_default().is_empty());
    let gpus = &requests[2];
    assert_eq!(gpus.count, Some(-1), "gpus: all");
    assert_eq!(gpus.capabilities, Some(vec![vec!["gpu".to_string()]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_file_labels_are_on_the_container() {
    support::ensure_test_images();
    let engine = Engine::connect().await.expect("docker engine");
    let guard = DockerProject::new("labelfile");
    let dir = TempDir::new("muster-labelfile-up");
    std::fs::write(
        dir.path().join("app.labels"),
        "org.example.team=ml\norg.example.tier=file\n",
    )
    .expect("write label file");
    let name = up_compose(
        &engine,
        &guard,
        &dir,
        &format!(
            "services:\n  app:\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'sleep 3600']\n\
             \x20   stop_grace_period: 1s\n    label_file: ./app.labels\n\
             \x20   labels: {{org.example.tier: web}}\n"
        ),
        &[],
    )
    .await;
    let info = inspect_full(&engine, &name).await.expect("inspect");
    let labels = info.config.and_then(|c| c.labels).expect("labels");
    assert_eq!(
        labels.get("org.example.team").map(String::as_str),
        Some("ml")
    );
    assert_eq!(
        labels.get("org.example.tier").map(String::as_str),
        Some("web"),
        "`labels:` wins over the file"
    );
}
