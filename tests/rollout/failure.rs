//! Failures and the way back, on the real engine: an image that never becomes
//! ready is rolled back by itself while the old revision serves every
//! request; `muster rollback` after a good rollout restores the previous
//! image; `muster history` lists the revisions with their outcomes.

use crate::support::rollout::*;

#[test]
fn a_bad_image_is_rolled_back_and_the_old_revision_serves_throughout() {
    let env = Env::new("rollbad");
    env.write("compose.yaml", &web_compose(V1, 3, false));
    // Readiness comes from muster's own http probe on the service name, which
    // the rollout points at each new container's address. (`muster up` runs
    // outside the compose network here and could not resolve `web`, so the
    // stack is brought up without the probe file.)
    env.write("probes.yaml", PROBES);
    env.up(&["compose.yaml"]);
    let files = ["compose.yaml", "probes.yaml"];
    let before = env.containers("web");
    assert_eq!(before.len(), 3);

    let client = env.client("web");
    let out = env.rollout_web(&files, BAD);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let polls = client.stop();

    assert_eq!(out.status.code(), Some(1), "a rolled back rollout exits 1");
    let text = stdout(&out);
    assert!(
        text.contains("HTTP 404"),
        "the reason names the probe: {text}"
    );
    assert!(text.contains("returning to revision 1"), "{text}");
    assert!(text.contains("revision 2 rolled_back"), "{text}");

    // The bad container never held the service name: every answer is v1.
    assert_polls(&polls, 3, 3);
    assert!(
        polls.iter().all(|p| p.body == "v1"),
        "something else than v1 answered: {polls:?}"
    );
    let after = env.containers("web");
    let ids = |v: &[Container]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&before), "the old containers were kept");

    let h = history(&env, &files, "web");
    let revs = h["revisions"].as_array().unwrap();
    assert_eq!(revs[0]["number"], 2);
    assert_eq!(revs[0]["outcome"], "rolled_back");
    assert_eq!(revs[0]["healthy"], false);
    assert_eq!(revs[0]["failures"], 1);
    assert!(revs[0]["message"]
        .as_str()
        .unwrap()
        .contains("returned to revision 1"));
    assert_eq!(h["active"], 1);

    // Nothing is left in progress, and the lock is free.
    let out = env.run(&files, &["--json", "rollout", "status", "web"]);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(status["unfinished"].is_null(), "{status}");
    assert_eq!(status["containers"].as_array().unwrap().len(), 3);
}

#[test]
fn rollback_after_a_good_rollout_restores_the_previous_image() {
    let env = Env::new("rollback");
    env.write("compose.yaml", &web_compose(V1, 2, true));
    let files = ["compose.yaml"];
    env.up(&files);

    let out = env.run(
        &files,
        &[
            "rollout",
            "web",
            "--image",
            V2,
            "--env",
            "GREETING=hi",
            "--monitor",
            "1s",
            "--drain",
            "500ms",
        ],
    );
    assert!(out.status.success());
    assert!(env.containers("web").iter().all(|c| c.image == V2));

    let out = env.run(
        &files,
        &["rollback", "web", "--monitor", "1s", "--drain", "500ms"],
    );
    assert!(out.status.success(), "rollback failed");
    assert!(
        stdout(&out).contains("rollback to revision 3"),
        "{}",
        stdout(&out)
    );
    let after = env.containers("web");
    assert_eq!(after.len(), 2);
    assert!(
        after
            .iter()
            .all(|c| c.image == V1 && c.running && c.revision == Some(3)),
        "{after:?}"
    );
    // The env override went with revision 2.
    for c in &after {
        let env_out = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{json .Config.Env}}", &c.id])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&env_out.stdout).contains("GREETING"));
    }

    let h = history(&env, &files, "web");
    let revs = h["revisions"].as_array().unwrap();
    let numbers: Vec<u64> = revs.iter().map(|r| r["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![3, 2, 1]);
    assert_eq!(revs[0]["kind"], "rollback");
    assert_eq!(revs[0]["to"], 1);
    assert_eq!(revs[0]["image"], V1);
    assert_eq!(revs[0]["outcome"], "succeeded");
    assert_eq!(revs[1]["image"], V2);
    assert_eq!(revs[1]["outcome"], "succeeded");
    assert_eq!(revs[1]["overrides"]["env"]["GREETING"], "hi");
    assert_eq!(revs[2]["kind"], "baseline");
    assert_eq!(h["active"], 3);

    // The table for people lists them too, the running one marked.
    let out = env.run(&files, &["history", "web"]);
    let table = stdout(&out);
    assert!(table.contains("* 3"), "{table}");
    assert!(table.contains("rollback to 1"), "{table}");
    assert!(
        table.contains("--image muster-test/web:v2 --env GREETING=hi"),
        "{table}"
    );

    // Rolling back again toggles to revision 2's image (as `kubectl rollout undo`).
    let out = env.run(
        &files,
        &["rollback", "web", "--monitor", "1s", "--drain", "500ms"],
    );
    assert!(out.status.success());
    assert!(env.containers("web").iter().all(|c| c.image == V2));
    // And --to names any kept revision.
    let out = env.run(&files, &["rollback", "web", "--to", "9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("revision 9 is not in the history"),
        "{}",
        stderr(&out)
    );
}
