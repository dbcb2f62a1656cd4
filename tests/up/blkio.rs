//! `blkio_config` on the real engine (issue 17): the per-device throttles
//! reach HostConfig `BlkioDevice*` and the container starts with them (the
//! kernel applies them to /dev/loop0's cgroup). `weight` is not checked here:
//! this kernel's blkio cgroup has no weight, and the engine discards it.
//! Also `platform:`, the other create option about the host's hardware.

use super::mounts::{load_compose, up_compose};
use crate::support::{self, DockerProject, TempDir, BUSYBOX_IMAGE};
use muster::engine::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blkio_throttles_reach_the_engine() {
    support::ensure_test_images();
    let engine = Engine::connect().await.expect("docker engine");
    let guard = DockerProject::new("blkio");
    let dir = TempDir::new("muster-blkio");
    let name = up_compose(
        &engine,
        &guard,
        &dir,
        &format!(
            "services:\n  app:\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'sleep 3600']\n\
             \x20   stop_grace_period: 1s\n    blkio_config:\n\
             \x20     device_read_bps: [{{path: /dev/loop0, rate: 12mb}}]\n\
             \x20     device_write_iops: [{{path: /dev/loop0, rate: 100}}]\n"
        ),
    )
    .await;
    let info = engine
        .docker()
        .inspect_container(
            &name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("inspect");
    assert_eq!(
        info.state.and_then(|s| s.running),
        Some(true),
        "started with the throttles"
    );
    let host = info.host_config.expect("host config");
    let read = host.blkio_device_read_bps.unwrap_or_default();
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0].path.as_deref(), Some("/dev/loop0"));
    assert_eq!(read[0].rate, Some(12 << 20));
    let iops = host.blkio_device_write_iops.unwrap_or_default();
    assert_eq!(iops.len(), 1, "{iops:?}");
    assert_eq!(iops[0].rate, Some(100));
}

/// `platform:` is create's platform parameter: the local amd64 image starts
/// with `linux/amd64`, and with `linux/s390x` the engine's own refusal (the
/// image does not match the platform) stops the service, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_is_passed_to_create_and_a_mismatch_is_the_engine_s_error() {
    support::ensure_test_images();
    let engine = Engine::connect().await.expect("docker engine");
    let guard = DockerProject::new("platform");
    let dir = TempDir::new("muster-platform");
    let name = up_compose(
        &engine,
        &guard,
        &dir,
        &format!(
            "services:\n  app:\n    image: {BUSYBOX_IMAGE}\n    platform: linux/amd64\n    \
             command: [sh, -c, 'sleep 3600']\n    stop_grace_period: 1s\n"
        ),
    )
    .await;
    let info = engine
        .docker()
        .inspect_container(
            &name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("created for linux/amd64");
    assert_eq!(info.state.and_then(|s| s.running), Some(true));

    let other = DockerProject::new("platform-bad");
    let dir = TempDir::new("muster-platform-bad");
    let p = load_compose(
        &other.name,
        &dir,
        &format!("services:\n  app:\n    image: {BUSYBOX_IMAGE}\n    platform: linux/s390x\n"),
    );
    let writes =
        muster::supervisor::runner::StateWrites::own(muster::supervisor::Writer::new(&p.name));
    let store = writes.store().clone();
    let options = muster::supervisor::start::UpOptions {
        wait_timeout: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    };
    let message = match muster::supervisor::start::up(&engine, &p, &options, &writes).await {
        Err(e) => e.to_string(),
        Ok(_) => store.snapshot().services["app"].reason.clone(),
    };
    assert!(message.contains("platform"), "{message}");
    assert!(
        engine
            .docker()
            .inspect_container(
                &format!("{}-app-1", other.name),
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .is_err(),
        "nothing created"
    );
}
