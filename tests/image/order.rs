//! A service whose image is present starts while another service's image is
//! still pulling (its registry paused with SIGSTOP): pulls never hold up
//! unrelated services, and the pulling one shows `pulling IMAGE` with its
//! numbers in the store (what /status serves).

use std::time::Duration;

use muster::compose::Project;
use muster::engine::Engine;
use muster::supervisor::start::{up, UpOptions, UpOutcome};
use muster::supervisor::{ServiceState, StateStore};

use crate::support::registry::Registry;
use crate::support::stack::{project, sh};
use crate::support::{ensure_test_images, DockerProject};
use crate::{local_name, pushed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn present_image_starts_while_another_pulls() {
    ensure_test_images();
    let registry = Registry::start();
    let (image, _guard) = pushed(&registry, &local_name("slow"), "muster/slow:1", 2 << 20, 1);
    let guard = DockerProject::new("pullorder");
    let mut slow = sh("agent", "exec sleep 100000");
    slow.image = Some(image.clone());
    let p: Project = project(&guard.name, vec![sh("redis", "exec sleep 100000"), slow]);
    let engine = Engine::connect().await.expect("engine");
    let store = StateStore::new(&p.name);

    registry.pause();
    let task = {
        let (engine, p, store) = (engine.clone(), p.clone(), store.clone());
        tokio::spawn(async move {
            let options = UpOptions {
                wait_timeout: Some(Duration::from_secs(120)),
                ..Default::default()
            };
            up(&engine, &p, &options, &store).await
        })
    };
    let mut rx = store.watch();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        {
            let snap = rx.borrow_and_update();
            let ready = snap.services.get("redis").map(|s| s.state) == Some(ServiceState::Ready);
            if ready {
                let agent = &snap.services["agent"];
                assert_eq!(agent.state, ServiceState::Pending, "{agent:?}");
                assert_eq!(agent.reason, format!("pulling {image}"));
                assert!(agent.pull.is_some(), "{agent:?}");
                break;
            }
        }
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("redis was not ready within 60 s while the agent's image pulled")
            .expect("store");
    }
    registry.resume();
    let report = task.await.expect("join").expect("up");
    assert_eq!(report.outcome, UpOutcome::Ready);
    let agent = &store.snapshot().services["agent"];
    assert_eq!(agent.state, ServiceState::Ready);
    assert!(agent.pull.is_none());
}
