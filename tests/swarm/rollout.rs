//! `muster rollout SERVICE --image REF --swarm`: Swarm's rolling update, ready
//! only when muster's probes pass on the new tasks; an image whose tasks never
//! answer is rolled back by Swarm, on muster's request, to the previous one.
//! Every rollout is a revision in the history store (`muster history`), and
//! `muster rollback --swarm` returns the service to an earlier revision; a
//! client polling the service's virtual IP sees no failed request during a
//! good rollout.

use crate::support::hosts::{self, SwarmStack};
use crate::support::text;

const STACK: &str = r#"
services:
  cache:
    image: muster-test/redis:1
    deploy:
      replicas: 2
      update_config: { parallelism: 1, order: start-first }
    x-muster:
      probes:
        - redis: { url: "redis://cache:6379" }
"#;

fn image(stack: &SwarmStack) -> String {
    stack.inspect("cache", "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
}

#[test]
fn a_rollout_waits_for_probes_and_a_bad_image_is_rolled_back_by_swarm() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "roll");
    let out = stack.up(STACK, None, &["--wait-timeout", "120s"]);
    assert!(out.status.success(), "{}", text(&out));
    for node in &cluster.nodes {
        node.docker_ok(&["tag", "muster-test/redis:1", "muster-test/redis:2"]);
    }
    let file = stack.compose_file(STACK);
    let file = file.to_string_lossy().to_string();
    // One history store for every muster of this test (the state file: the
    // musters run in the overlay's namespace, where no test Redis is).
    let dir = crate::support::TempDir::new("swarm-history");
    let state = dir.path().join("state.json");
    let muster = || stack.muster().state_file(&state);
    let rollout = |image: &str, extra: &[&str]| {
        let mut args = vec![
            "-f",
            &file,
            "-p",
            &stack.name,
            "rollout",
            "cache",
            "--image",
            image,
            "--swarm",
        ];
        args.extend(extra);
        muster().run(&args)
    };
    let history = || {
        let out = muster().run(&["-f", &file, "-p", &stack.name, "--json", "history", "cache"]);
        assert!(out.status.success(), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history json");
        v["revisions"].as_array().cloned().unwrap_or_default()
    };

    // A good image: every new task is probed ready before muster says so,
    // and a client polling every task Swarm says serves sees no failure.
    let done = std::sync::atomic::AtomicBool::new(false);
    let (out, polled) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| {
            let mut answers = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                answers.extend(poll_tasks(&stack, "cache"));
            }
            answers
        });
        let out = rollout(
            "muster-test/redis:2",
            &["--json", "--progress-deadline", "90s"],
        );
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (out, poller.join().expect("poller"))
    });
    let failed: Vec<&String> = polled.iter().filter(|a| *a != "PONG").collect();
    eprintln!("rollout: {} requests to the serving tasks", polled.len());
    assert!(
        failed.is_empty() && !polled.is_empty(),
        "{} of {} requests failed during the rollout: {failed:?}",
        failed.len(),
        polled.len()
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["from_image"], "muster-test/redis:1");
    let ready: Vec<_> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["ready"] == true)
        .collect();
    assert_eq!(ready.len(), 2, "{report}");
    for t in ready {
        assert_eq!(t["image"], "muster-test/redis:2", "{t}");
        assert!(t["probe"].as_str().unwrap().contains("ok"), "{t}");
    }
    assert_eq!(image(&stack), "muster-test/redis:2");

    // A bad image (busybox: no Redis ever answers): rolled back by Swarm.
    let out = rollout("muster-test/busybox:1", &["--progress-deadline", "15s"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("service cache: image muster-test/busybox:1 was not ready within 15s"),
        "{all}"
    );
    assert!(
        all.contains(
            "asked Swarm to roll back to muster-test/redis:2: 2 of its tasks are ready again"
        ),
        "{all}"
    );
    assert_eq!(image(&stack), "muster-test/redis:2", "Swarm rolled back");

    // The history: the image before as the baseline, the good rollout, the
    // rolled-back one (newest first).
    let revisions = history();
    let row = |r: &serde_json::Value| {
        (
            r["number"].as_u64().unwrap_or(0),
            r["kind"].as_str().unwrap_or("").to_string(),
            r["image"].as_str().unwrap_or("").to_string(),
            r["outcome"].as_str().unwrap_or("").to_string(),
        )
    };
    let rows: Vec<_> = revisions.iter().map(row).collect();
    let expect = |n: u64, kind: &str, image: &str, outcome: &str| {
        (n, kind.to_string(), image.to_string(), outcome.to_string())
    };
    assert_eq!(
        rows,
        [
            expect(3, "rollout", "muster-test/busybox:1", "rolled_back"),
            expect(2, "rollout", "muster-test/redis:2", "succeeded"),
            expect(1, "baseline", "muster-test/redis:1", "succeeded"),
        ]
    );
    assert_eq!(revisions[0]["previous"], 2);

    // `muster rollback --swarm`: back to the revision before the running one.
    let out = muster().run(&[
        "-f",
        &file,
        "-p",
        &stack.name,
        "rollback",
        "cache",
        "--swarm",
        "--progress-deadline",
        "90s",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(image(&stack), "muster-test/redis:1");
    let revisions = history();
    assert_eq!(
        row(&revisions[0]),
        expect(4, "rollback", "muster-test/redis:1", "succeeded")
    );
    assert_eq!(revisions[0]["to"], 1, "{}", revisions[0]);
}

/// One round of a client that asks every task Swarm lists as running (and
/// meant to run) for PING at its overlay address, as a client resolving
/// `tasks.cache` would (this machine has no IPVS, so the service's virtual IP
/// and the routing mesh do not answer here). A task that did not answer
/// counts as a failure only when Swarm still lists it as serving afterwards
/// (one told to shut down meanwhile was no longer in the client's list).
fn poll_tasks(stack: &SwarmStack, service: &str) -> Vec<String> {
    let manager = stack.cluster.manager();
    let name = format!("{}_{service}", stack.name);
    let format = format!(
        "{{{{.ID}}}} {{{{.Status.State}}}} {{{{.DesiredState}}}} {{{{range .NetworksAttachments}}}}\
         {{{{if eq .Network.Spec.Name \"{}_default\"}}}}{{{{index .Addresses 0}}}}{{{{end}}}}{{{{end}}}}",
        stack.name
    );
    let serving = |ids: &[&str]| -> Vec<(String, String)> {
        let mut args = vec!["inspect", "-f", format.as_str()];
        args.extend(ids);
        let out = manager.docker(&args).output().expect("docker inspect");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f.as_slice() {
                    [id, "running", "running", addr] => Some((
                        id.to_string(),
                        addr.split('/').next().unwrap_or(addr).to_string(),
                    )),
                    _ => None,
                }
            })
            .collect()
    };
    let ids = manager.docker_ok(&[
        "service",
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        &name,
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return vec!["no task serving".into()];
    }
    let mut answers = Vec::new();
    for (id, addr) in serving(&ids) {
        let answer = stack.redis_cli(&addr, &["PING"]);
        if answer == "PONG" || serving(&[id.as_str()]).is_empty() {
            answers.push("PONG".to_string());
        } else {
            answers.push(format!("task {id} at {addr}: {answer:?}"));
        }
    }
    answers
}
