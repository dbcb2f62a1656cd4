//! The test cluster itself: three nodes that Swarm tells apart, one swarm,
//! the test images on every node, and a replicated service spread over them.
//! Why: every other swarm test trusts this harness; a harness whose nodes
//! share a hostname or lack an image would make those tests lie.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::hosts;

#[test]
fn three_nodes_one_swarm_images_everywhere_tasks_spread() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let manager = cluster.manager();
    let listed = manager.docker_ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
    let names: BTreeSet<String> = listed
        .lines()
        .filter(|l| l.ends_with(" Ready"))
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect();
    let expected: BTreeSet<String> = cluster.nodes.iter().map(|n| n.hostname.clone()).collect();
    assert_eq!(names, expected, "node ls:\n{listed}");
    for node in &cluster.nodes {
        let images = node.docker_ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
        for image in hosts::NODE_IMAGES {
            assert!(
                images.lines().any(|l| l == image),
                "{image} missing on {}",
                node.hostname
            );
        }
    }
    // A replicated service lands on all three nodes (spread is Swarm's default).
    let name = format!("mswarm{}_spread", std::process::id());
    manager.docker_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        &name,
        "--replicas",
        "3",
        "--label",
        "muster.test.swarm=1",
        "muster-test/busybox:1",
        "sleep",
        "3600",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let nodes = loop {
        let ps = manager.docker_ok(&[
            "service",
            "ps",
            &name,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ]);
        let running: BTreeSet<String> = ps
            .lines()
            .filter(|l| l.contains(" Running"))
            .filter_map(|l| l.split(' ').next().map(str::to_string))
            .collect();
        if running.len() == 3 || Instant::now() > deadline {
            break running;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    manager.docker_ok(&["service", "rm", &name]);
    assert_eq!(nodes, expected, "tasks did not spread over the three nodes");
}
