//! `up --swarm` refusing what it cannot do, with errors that name the node,
//! DOCKER_HOST, service and image and say what to do next.

use crate::support::hosts::{self, SwarmStack};
use crate::support::text;

#[test]
fn a_worker_is_not_a_manager_and_the_error_says_where_to_point() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "worker");
    let worker = &cluster.nodes[1];
    let yaml = "services:\n  redis:\n    image: muster-test/redis:1\n";
    let out = stack.up(yaml, Some(&worker.host()), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    for want in [
        worker.hostname.as_str(),
        &worker.host(),
        "not a manager",
        "point DOCKER_HOST at a manager",
        cluster.manager().ip.as_str(),
    ] {
        assert!(all.contains(want), "{want:?} missing in:\n{all}");
    }
    assert_eq!(stack.services(), "", "nothing was created");
}

#[test]
fn an_image_missing_on_the_nodes_names_the_image_and_nodes() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "noimage");
    let yaml = "services:\n  ghost:\n    image: muster-test/not-loaded:1\n    \
                deploy: { placement: { constraints: [\"node.role == worker\"] } }\n";
    let out = stack.up(yaml, None, &["--wait-timeout", "90s"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("service ghost: image muster-test/not-loaded:1 is missing on node(s)"),
        "{all}"
    );
    let named_worker = cluster.nodes[1..].iter().any(|n| all.contains(&n.hostname));
    assert!(named_worker, "a worker is named:\n{all}");
    assert!(all.contains("docker save"), "says what to do:\n{all}");
}

#[test]
fn exec_probes_are_refused_before_anything_is_created() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "exec");
    let yaml = "services:\n  web:\n    image: muster-test/busybox:1\n    x-muster:\n      \
                probes:\n        - exec: { command: [\"true\"] }\n";
    let out = stack.up(yaml, None, &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("service web: x-muster.probes[0]: `up --swarm` cannot run exec probes"),
        "{all}"
    );
    assert_eq!(stack.services(), "");
}
