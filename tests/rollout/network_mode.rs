//! `network_mode: service:X` through rollouts (issue #18 item 4): a rollout
//! gives X's new containers new numbers and ids, so the service in X's
//! namespace is recreated to join X's new container when the rollout ends,
//! and a rollout of the joining service itself joins X's current container
//! (not `X-1`, which the rollout removed).

use crate::support::rollout::*;
use crate::support::BUSYBOX_IMAGE;
use crate::support::{docker_inspect as inspect, page_on_loopback};

/// The one running container of `service`.
fn running(env: &Env, service: &str) -> Container {
    let mut live: Vec<Container> = env
        .containers(service)
        .into_iter()
        .filter(|c| c.running)
        .collect();
    assert_eq!(live.len(), 1, "{service}: {live:?}");
    live.remove(0)
}

#[test]
fn the_service_in_xs_namespace_follows_a_rollout_of_x() {
    let env = Env::new("rollnetns");
    env.write(
        "compose.yaml",
        &format!(
            "{}  sidecar:\n    image: {BUSYBOX_IMAGE}\n    network_mode: service:web\n    stop_grace_period: 1s\n    command: [\"sleep\", \"100000\"]\n",
            web_compose(V1, 1, true)
        ),
    );
    let files = ["compose.yaml"];
    env.up(&files);
    let web1 = running(&env, "web");
    let side1 = running(&env, "sidecar");
    assert_eq!(
        inspect(&side1.name, "{{.HostConfig.NetworkMode}}"),
        format!("container:{}", web1.id)
    );
    assert_eq!(page_on_loopback(&side1.name), "v1");

    // Roll X to v2: its new container has a new number; the sidecar is
    // recreated (a new id) into the new container's namespace.
    let out = env.rollout_web(&files, V2);
    assert!(out.status.success(), "rollout failed");
    let web2 = running(&env, "web");
    assert_ne!(web2.id, web1.id);
    assert_eq!(web2.image, V2);
    let side2 = running(&env, "sidecar");
    assert_ne!(side2.id, side1.id, "the sidecar was not recreated");
    assert_eq!(
        inspect(&side2.name, "{{.HostConfig.NetworkMode}}"),
        format!("container:{}", web2.id)
    );
    assert_eq!(page_on_loopback(&side2.name), "v2");
    assert!(
        stdout(&out).contains(&format!(
            "recreated {} to join the network namespace",
            side2.name
        )),
        "{}",
        stdout(&out)
    );

    // A rollout of the sidecar itself joins web's current container, whose
    // name is no longer `web-1`.
    let out = env.run(
        &files,
        &["rollout", "sidecar", "--env", "MARK=2", "--monitor", "1s"],
    );
    assert!(out.status.success(), "rollout of the sidecar failed");
    let side3 = running(&env, "sidecar");
    assert_ne!(side3.id, side2.id);
    assert_eq!(
        inspect(&side3.name, "{{.HostConfig.NetworkMode}}"),
        format!("container:{}", web2.id)
    );
    assert_eq!(page_on_loopback(&side3.name), "v2");

    // Rolling web back: the sidecar follows again.
    let out = env.run(&files, &["rollback", "web", "--monitor", "1s"]);
    assert!(out.status.success(), "rollback failed");
    let web3 = running(&env, "web");
    assert_eq!(web3.image, V1);
    let side4 = running(&env, "sidecar");
    assert_eq!(
        inspect(&side4.name, "{{.HostConfig.NetworkMode}}"),
        format!("container:{}", web3.id)
    );
    assert_eq!(page_on_loopback(&side4.name), "v1");
    assert_eq!(
        inspect(&side4.name, "{{range .Config.Env}}{{println .}}{{end}}")
            .lines()
            .filter(|l| *l == "MARK=2")
            .count(),
        1,
        "the sidecar's own rollout (its env) was kept"
    );
}
