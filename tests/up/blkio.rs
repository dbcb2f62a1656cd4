//! `blkio_config` on the real engine (issue 17): the per-device throttles
//! reach HostConfig `BlkioDevice*` and the container starts with them (the
//! kernel applies them to /dev/loop0's cgroup). `weight` is not checked here:
//! this kernel's blkio cgroup has no weight, and the engine discards it.
//! Also `platform:`, the other create option about the host's hardware.

use super::{inspect_full, load_compose, up_compose, up_refused};
use crate::support::{self, DockerProject, TempDir, BUSYBOX_IMAGE};
use bollard::models::ContainerInspectResponse;
use muster::engine::Engine;

/// Service `app` of project `test` started: a sleeping busybox with the
/// compose keys `keys` (lines indented under the service) added.
struct App {
    engine: Engine,
    _guard: DockerProject,
    _dir: TempDir,
    /// The engine's inspect of the running container.
    info: ContainerInspectResponse,
}

async fn up_app(test: &str, keys: &str) -> App {
    support::ensure_test_images();
    let engine = Engine::connect().await.expect("docker engine");
    let guard = DockerProject::new(test);
    let dir = TempDir::new(&format!("muster-{test}"));
    let text = format!(
        "services:\n  app:\n    image: {BUSYBOX_IMAGE}\n    command: [sh, -c, 'sleep 3600']\n\
         \x20   stop_grace_period: 1s\n{keys}"
    );
    let name = up_compose(&engine, &guard, &dir, &text, &[]).await;
    let info = inspect_full(&engine, &name)
        .await
        .unwrap_or_else(|e| panic!("inspect {name}: {e}"));
    assert_eq!(
        info.state.as_ref().and_then(|s| s.running),
        Some(true),
        "{name} started with {keys}"
    );
    App {
        engine,
        _guard: guard,
        _dir: dir,
        info,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blkio_throttles_reach_the_engine() {
    let app = up_app(
        "blkio",
        "    blkio_config:\n\
         \x20     device_read_bps: [{path: /dev/loop0, rate: 12mb}]\n\
         \x20     device_write_iops: [{path: /dev/loop0, rate: 100}]\n",
    )
    .await;
    let host = app.info.host_config.expect("host config");
    let read = host.blkio_device_read_bps.unwrap_or_default();
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0].path.as_deref(), Some("/dev/loop0"));
    assert_eq!(read[0].rate, Some(12 << 20));
    let iops = host.blkio_device_write_iops.unwrap_or_default();
    assert_eq!(iops.len(), 1, "{iops:?}");
    assert_eq!(iops[0].rate, Some(100));
}

/// `platform:` is create's platform parameter: the local amd64 image starts
/// with `linux/amd64` (`up_app` asserts it runs), and with `linux/s390x` the
/// engine's own refusal (the image does not match the platform) stops the
/// service, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_is_passed_to_create_and_a_mismatch_is_the_engine_s_error() {
    let app = up_app("platform", "    platform: linux/amd64\n").await;

    let other = DockerProject::new("platform-bad");
    let dir = TempDir::new("muster-platform-bad");
    let p = load_compose(
        &other.name,
        &dir,
        &format!("services:\n  app:\n    image: {BUSYBOX_IMAGE}\n    platform: linux/s390x\n"),
        &[],
    );
    let message = up_refused(&app.engine, &p).await;
    assert!(message.contains("platform"), "{message}");
    assert!(
        inspect_full(&app.engine, &format!("{}-app-1", other.name))
            .await
            .is_err(),
        "nothing created"
    );
}
