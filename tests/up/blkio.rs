//! `blkio_config` on the real engine (issue 17): the per-device throttles
//! reach HostConfig `BlkioDevice*` and the container starts with them (the
//! kernel applies them to /dev/loop0's cgroup). `weight` is not checked here:
//! this kernel's blkio cgroup has no weight, and the engine discards it.

use super::mounts::up_compose;
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
