//! `muster rollout SERVICE --image REF --swarm`: Swarm's rolling update, ready
//! only when muster's probes pass on the new tasks; an image whose tasks never
//! answer is rolled back by Swarm, on muster's request, to the previous one.
//! Every rollout is a revision in the history store (`muster history`), and
//! `muster rollback --swarm` returns the service to an earlier revision. A
//! client polling the serving tasks sees no failed request during the good
//! rollout nor during the two bad ones (an image that crashes on start, one
//! that runs but never answers): start-first plus the compose healthcheck
//! muster carries into the Swarm spec keep the old tasks serving.

use crate::support::hosts::{self, SwarmStack};
use crate::support::text;

/// The healthcheck is what keeps a task that runs but does not answer out
/// of the serving set: Swarm reports the task `starting` (not `running`),
/// adds it to the service's DNS and virtual IP only once healthy, and a
/// start-first update stops an old task only for a new one that runs.
const STACK: &str = r#"
services:
  cache:
    image: muster-test/redis:1
    healthcheck:
      test: ["CMD-SHELL", "echo PING | nc -w 1 127.0.0.1 6379 | grep -q PONG"]
      interval: 1s
      timeout: 3s
      retries: 2
    deploy:
      replicas: 2
      update_config: { parallelism: 1, order: start-first }
    x-muster:
      probes:
        - redis: { url: "redis://cache:6379" }
"#;

/// An image that runs for ever and never answers (busybox's `sleep`),
/// committed on every node.
const SLEEPER: &str = "muster-test/sleeper:1";

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
        let made = node.docker_ok(&["create", "muster-test/busybox:1"]);
        node.docker_ok(&[
            "commit",
            "--change",
            r#"CMD ["sleep", "1000000"]"#,
            &made,
            SLEEPER,
        ]);
        node.docker_ok(&["rm", &made]);
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
        // The revision the Swarm service runs (`*` in the table).
        let active = v["active"].as_u64();
        (
            v["revisions"].as_array().cloned().unwrap_or_default(),
            active,
        )
    };

    // A good image: every new task is probed ready before muster says so,
    // and a client polling every task Swarm says serves sees no failure.
    let (out, seen) = while_polling(&stack, || {
        rollout(
            "muster-test/redis:2",
            &["--json", "--progress-deadline", "90s"],
        )
    });
    seen.assert_no_failure("the good rollout");
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

    // Two bad images, each rolled back by Swarm on muster's request while the
    // client keeps polling, without one failed request: busybox's `sh` exits
    // at once (the image that crashes on start); the sleeper runs but never
    // answers, and the healthcheck keeps it `starting`, out of the serving
    // set, so start-first never stops an old task for it.
    for bad in ["muster-test/busybox:1", SLEEPER] {
        let (out, seen) = while_polling(&stack, || rollout(bad, &["--progress-deadline", "15s"]));
        seen.assert_no_failure(bad);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(!all.contains("has no healthcheck"), "{all}");
        assert!(
            all.contains(&format!(
                "service cache: image {bad} was not ready within 15s"
            )),
            "{all}"
        );
        assert!(
            all.contains(
                "asked Swarm to roll back to muster-test/redis:2: 2 of its tasks are ready again"
            ),
            "{all}"
        );
        assert_eq!(image(&stack), "muster-test/redis:2", "Swarm rolled back");
    }

    // The history: the image before as the baseline, the good rollout, the
    // rolled-back ones (newest first); the service runs revision 2's image.
    let (revisions, active) = history();
    assert_eq!(active, Some(2));
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
            expect(4, "rollout", SLEEPER, "rolled_back"),
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
    let (revisions, active) = history();
    assert_eq!(
        row(&revisions[0]),
        expect(5, "rollback", "muster-test/redis:1", "succeeded")
    );
    assert_eq!(revisions[0]["to"], 1, "{}", revisions[0]);
    assert_eq!(active, Some(5));
    let out = muster().run(&["-f", &file, "-p", &stack.name, "history", "cache"]);
    let table = text(&out);
    assert!(
        table.lines().any(|l| l.starts_with("* 5 ")),
        "revision 5 starred: {table}"
    );
    assert!(
        table.contains("* = the revision whose image the Swarm service runs"),
        "{table}"
    );
}

/// What the polling client saw during one rollout.
struct Polled {
    /// Requests to the addresses Swarm's DNS gave.
    asked: usize,
    /// The ones that failed.
    failed: Vec<String>,
}

impl Polled {
    fn assert_no_failure(&self, during: &str) {
        eprintln!(
            "{during}: {} requests to the tasks Swarm's DNS named, {} failed",
            self.asked,
            self.failed.len()
        );
        assert!(
            self.failed.is_empty() && self.asked > 0,
            "{} of {} requests failed during {during}: {:#?}",
            self.failed.len(),
            self.asked,
            self.failed
        );
    }
}

/// Runs `work` (a rollout) while a client polls the service's tasks round
/// after round ([`poll_tasks`]).
fn while_polling<T: Send>(stack: &SwarmStack, work: impl FnOnce() -> T) -> (T, Polled) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let poller = scope.spawn(|| {
            let mut seen = Polled {
                asked: 0,
                failed: Vec::new(),
            };
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                poll_tasks(stack, "cache", &mut seen);
            }
            seen
        });
        let out = work();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (out, poller.join().expect("poller"))
    })
}

/// One round of a client of the service: it resolves `tasks.cache` through
/// Swarm's own DNS (from a container on the stack's overlay, as any client
/// of the stack does) and asks every address for PING. (The service's
/// virtual IP needs IPVS, which this machine lacks; `tasks.<service>` is the
/// same set of tasks without the load balancer.) Every answer but PONG is a
/// failure, and so is a round with no address at all.
fn poll_tasks(stack: &SwarmStack, service: &str, seen: &mut Polled) {
    let addresses = stack.resolve(&format!("tasks.{service}"));
    seen.asked += 1;
    if addresses.is_empty() {
        seen.failed
            .push(format!("tasks.{service} resolves to no task"));
        return;
    }
    for (i, addr) in addresses.iter().enumerate() {
        if i > 0 {
            seen.asked += 1;
        }
        let answer = stack.redis_cli(addr, &["PING"]);
        if answer != "PONG" {
            seen.failed.push(format!(
                "task at {addr} (of {addresses:?}) answered {answer:?}"
            ));
        }
    }
}
