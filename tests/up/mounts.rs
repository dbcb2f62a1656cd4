//! Long-syntax volume options on the real engine (issue 17): `bind.propagation`,
//! `volume.nocopy` and `tmpfs.size` / `tmpfs.mode` reach the container as the
//! Engine API's `Mounts` options, as docker/compose's create.go passes them.
//! The tmpfs size and mode are checked inside the container (`df`, `stat`),
//! the bind propagation (`private`, not the default `rprivate`) as the engine
//! reports the live mount.

use std::collections::HashMap;
use std::time::Duration;

use super::secrets::exec;
use crate::support::{self, DockerProject, TempDir, BUSYBOX_IMAGE};
use muster::compose::{self, LoadOptions};
use muster::engine::Engine;
use muster::supervisor::start::{up, UpOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_volume_options_reach_the_engine_as_mount_options() {
    support::ensure_test_images();
    let engine = Engine::connect().await.expect("docker engine");
    let guard = DockerProject::new("mountopts");
    let dir = TempDir::new("muster-mountopts");
    std::fs::create_dir_all(dir.path().join("host")).expect("mkdir host");
    let name = up_compose(
        &engine,
        &guard,
        &dir,
        &format!(
            r#"services:
  app:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "sleep 3600"]
    stop_grace_period: 1s
    volumes:
      - type: bind
        source: ./host
        target: /host
        consistency: cached
        bind: {{propagation: private}}
      - type: volume
        source: data
        target: /data
        volume: {{nocopy: true}}
      - type: tmpfs
        target: /scratch
        tmpfs: {{size: 8m, mode: 0750}}
volumes:
  data:
"#
        ),
    )
    .await;

    // tmpfs: 8 MiB (8192 1K-blocks) with mode 0750, inside the container.
    let df = exec(&name, "df -k /scratch | tail -n 1");
    assert_eq!(df.split_whitespace().nth(1), Some("8192"), "{df}");
    assert_eq!(exec(&name, "stat -c %a /scratch").trim(), "750");

    let info = engine
        .docker()
        .inspect_container(
            &name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("inspect");
    // The live bind mount's propagation.
    let live = info.mounts.clone().unwrap_or_default();
    let host = live
        .iter()
        .find(|m| m.destination.as_deref() == Some("/host"))
        .expect("the /host mount");
    assert_eq!(host.propagation.as_deref(), Some("private"));
    // The create options as the engine stored them.
    let mounts = info
        .host_config
        .and_then(|h| h.mounts)
        .expect("HostConfig.Mounts");
    let by_target = |t: &str| {
        mounts
            .iter()
            .find(|m| m.target.as_deref() == Some(t))
            .unwrap_or_else(|| panic!("{t} in {mounts:?}"))
    };
    assert_eq!(by_target("/host").consistency.as_deref(), Some("cached"));
    assert_eq!(
        by_target("/data")
            .volume_options
            .as_ref()
            .and_then(|o| o.no_copy),
        Some(true)
    );
    let tmpfs = by_target("/scratch")
        .tmpfs_options
        .as_ref()
        .expect("tmpfs options");
    assert_eq!(tmpfs.size_bytes, Some(8 << 20));
    assert_eq!(tmpfs.mode, Some(0o750));
}

/// Writes `text` as dir/compose.yaml and loads it as project `project`.
pub(crate) fn load_compose(project: &str, dir: &TempDir, text: &str) -> muster::compose::Project {
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, text).expect("write compose.yaml");
    compose::load(&LoadOptions {
        files: vec![file],
        project_name: Some(project.to_string()),
        environment: Some(HashMap::new()),
        working_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .expect("loads")
}

/// [`load_compose`] then `up`; returns the name of service `app`'s container.
pub(crate) async fn up_compose(
    engine: &Engine,
    guard: &DockerProject,
    dir: &TempDir,
    text: &str,
) -> String {
    let p = load_compose(&guard.name, dir, text);
    let writes =
        muster::supervisor::runner::StateWrites::own(muster::supervisor::Writer::new(&p.name));
    let options = UpOptions {
        wait_timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    up(engine, &p, &options, &writes).await.expect("up");
    format!("{}-app-1", guard.name)
}
