//! Long-syntax volume options on the real engine (issue 17): `bind.propagation`,
//! `volume.nocopy` and `tmpfs.size` / `tmpfs.mode` reach the container as the
//! Engine API's `Mounts` options, as docker/compose's create.go passes them.
//! The tmpfs size and mode are checked inside the container (`df`, `stat`),
//! the bind propagation (`private`, not the default `rprivate`) as the engine
//! reports the live mount. And a propagation the engine refuses at start
//! (`rslave` of a directory on a private mount) fails the service.

use std::time::Duration;

use super::{exec, inspect_full, load_compose, up_compose, up_within};
use crate::support::{self, DockerProject, TempDir, BUSYBOX_IMAGE};
use muster::engine::Engine;
use muster::supervisor::start::UpOutcome;
use muster::supervisor::ServiceState;

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
        &[],
    )
    .await;

    // tmpfs: 8 MiB (8192 1K-blocks) with mode 0750, inside the container.
    let df = exec(&name, "df -k /scratch | tail -n 1");
    assert_eq!(df.split_whitespace().nth(1), Some("8192"), "{df}");
    assert_eq!(exec(&name, "stat -c %a /scratch").trim(), "750");

    let info = inspect_full(&engine, &name).await.expect("inspect");
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

/// The report checked (issue 17): `bind.propagation: rslave` of a directory
/// that is not on a shared or slave mount is refused by the engine when the
/// container starts (the create call succeeds). `up` must not call that a
/// success: the service is failed with the engine's reason, the outcome is
/// failed, its dependent is blocked, and a second `up` (the container now
/// exists, with the same config hash) says the same instead of keeping it;
/// the `muster up` command exits 1 with outcome `failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_propagation_the_engine_refuses_at_start_fails_the_service() {
    support::ensure_test_images();
    let engine = Engine::connect().await.expect("docker engine");
    let guard = DockerProject::new("rslave");
    let dir = TempDir::new("muster-rslave");
    std::fs::create_dir_all(dir.path().join("host")).expect("mkdir host");
    let p = load_compose(
        &guard.name,
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
        bind: {{propagation: rslave}}
  web:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "sleep 3600"]
    depends_on: [app]
"#
        ),
        &[],
    );
    for round in ["first up", "second up"] {
        let (store, report) = up_within(&engine, &p, Duration::from_secs(60)).await;
        let snapshot = store.snapshot();
        let app = &snapshot.services["app"];
        assert!(
            app.reason.contains("not a shared or slave mount"),
            "{round}: {:?} {}",
            app.state,
            app.reason
        );
        assert_eq!(app.state, ServiceState::Failed, "{round}");
        assert!(
            snapshot.services["web"].reason.contains("app failed"),
            "{round}: {}",
            snapshot.services["web"].reason
        );
        match report {
            Ok(r) => assert_eq!(r.outcome, UpOutcome::Failed, "{round}"),
            Err(e) => assert!(e.to_string().contains("shared or slave"), "{round}: {e}"),
        }
        let info = inspect_full(&engine, &format!("{}-app-1", guard.name))
            .await
            .expect("created");
        assert_ne!(info.state.and_then(|s| s.running), Some(true), "{round}");
    }
    // And `muster up` itself: exit 1, the service failed with the engine's reason.
    let out = support::Muster::new().dir(dir.path()).run(&[
        "up",
        "-p",
        &guard.name,
        "--json",
        "--wait-timeout",
        "60s",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // `up --json` prints JSON lines: the progress events, then the report.
    let last = stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(last).expect("up --json report");
    assert_eq!(report["result"]["outcome"], "failed", "{report}");
}
