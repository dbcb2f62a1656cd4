//! A start-first rollout of a 3-replica HTTP service on the real engine while
//! a client container polls it through its DNS name: no request fails, the
//! name never has fewer than 3 ready replicas, and `muster up` afterwards
//! keeps the new revision instead of undoing it.

use crate::support::rollout::*;

#[test]
fn start_first_rollout_keeps_every_request_and_every_replica() {
    let env = Env::new("rolltraffic");
    env.write("compose.yaml", &web_compose(V1, 3, true));
    let files = ["compose.yaml"];
    env.up(&files);
    let before = env.containers("web");
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|c| c.image == V1 && c.running));

    let client = env.client("web");
    let out = env.rollout_web(&files, V2);
    // A few more rounds after the last old container left.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let polls = client.stop();
    assert!(out.status.success(), "rollout failed");
    let text = stdout(&out);
    assert!(text.contains("revision 2 succeeded"), "{text}");

    // The poll log: never a failed request, never fewer than 3 ready replicas
    // (max_unavailable 0), never more than 4 addresses (parallelism 1).
    assert_polls(&polls, 3, 4);
    assert_eq!(polls.first().map(|p| p.body.as_str()), Some("v1"));
    assert_eq!(polls.last().map(|p| p.body.as_str()), Some("v2"));
    assert!(
        polls.iter().any(|p| p.dns == 4),
        "a new container never joined beside the old ones: {polls:?}"
    );

    let after = env.containers("web");
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        after
            .iter()
            .all(|c| c.image == V2 && c.running && c.revision == Some(2)),
        "{after:?}"
    );
    assert!(after.iter().all(|c| before.iter().all(|b| b.id != c.id)));

    // History: the running containers before the first rollout (1), and 2.
    let h = history(&env, &files, "web");
    assert_eq!(h["active"], 2);
    let revs = h["revisions"].as_array().unwrap();
    assert_eq!(revs.len(), 2, "{h}");
    assert_eq!(revs[0]["number"], 2);
    assert_eq!(revs[0]["outcome"], "succeeded");
    assert_eq!(revs[0]["healthy"], true);
    assert_eq!(revs[0]["image"], V2);
    assert!(revs[0]["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(revs[0]["overrides"]["image"], V2);
    assert_eq!(revs[1]["number"], 1);
    assert_eq!(revs[1]["kind"], "baseline");
    assert_eq!(revs[1]["image"], V1);

    // `muster up` with the unchanged compose file keeps revision 2 (same containers).
    let out = env.run(&files, &["up", "--wait-timeout", "60s"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("keeping revision 2"),
        "{}",
        stderr(&out)
    );
    let again = env.containers("web");
    let ids = |v: &[Container]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&after));

    // Rolling out the same thing again changes nothing.
    let out = env.run(
        &files,
        &["rollout", "web", "--image", V2, "--monitor", "1s"],
    );
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("nothing to roll out"),
        "{}",
        stdout(&out)
    );
    assert_eq!(ids(&env.containers("web")), ids(&after));
}
