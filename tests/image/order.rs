//! A service whose image is present starts while another service's image is
//! still pulling (its registry paused with SIGSTOP): pulls never hold up
//! unrelated services, and the pulling one shows `pulling IMAGE` with its
//! numbers in the store (what /status serves).

use std::time::Duration;

use muster::supervisor::start::UpOutcome;
use muster::supervisor::ServiceState;

use crate::support::stack::sh;
use crate::PullingStack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn present_image_starts_while_another_pulls() {
    let stack = PullingStack::new(
        "pullorder",
        2 << 20,
        1,
        vec![sh("redis", "exec sleep 100000")],
    )
    .await;
    let (registry, image, store) = (&stack.registry, &stack.image, &stack.store);

    registry.pause();
    let task = stack.spawn_up();
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
