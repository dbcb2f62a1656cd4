//! Interrupted rollouts on the real engine: a muster killed with SIGKILL in
//! the middle of a rollout leaves only old containers and new ready ones
//! serving, and the next `muster rollout status` finishes the rollout (no
//! orphan container, history intact). A second rollout of a service that is
//! being rolled out is refused, naming the owner; `rollout status` follows it.

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::support::rollout::*;

/// `muster --json rollout web --image IMAGE --monitor MONITOR --drain DRAIN`
/// started, and the lines of its output (its events) to read.
fn spawn_rollout(
    env: &Env,
    files: &[&str],
    image: &str,
    monitor: &str,
    drain: &str,
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = env
        .muster(files)
        .args(["--json", "rollout", "web", "--image", image])
        .args(["--monitor", monitor, "--drain", drain])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn muster");
    let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    (child, lines)
}

/// [`spawn_rollout`] with a 1 s drain, SIGKILLed as soon as `stop` says so;
/// the events it printed until then.
fn rollout_killed_at(
    env: &Env,
    files: &[&str],
    image: &str,
    monitor: &str,
    stop: impl FnMut(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let (mut child, mut lines) = spawn_rollout(env, files, image, monitor, "1s");
    let events = read_events_until(&mut lines, stop);
    child.kill().expect("kill -9 muster");
    child.wait().unwrap();
    events
}

/// Reads `--json` events from a running muster until `stop` says so.
fn read_events_until(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    mut stop: impl FnMut(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("read muster's output");
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let done = stop(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
    panic!("muster ended before the expected event; saw {seen:?}");
}

fn redis_get(env: &Env, key: &str) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &env.redis.port.to_string(), "GET", key])
        .output()
        .expect("redis-cli");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// (holds the `web` alias, image, Docker health) of a container.
fn serving_state(id: &str) -> (bool, String, String) {
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{json .Aliases}}{{end}}|{{.Config.Image}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}",
            id,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let parts: Vec<&str> = text.split('|').collect();
    (
        parts[0].contains("\"web\""),
        parts.get(1).unwrap_or(&"").to_string(),
        parts.get(2).unwrap_or(&"").to_string(),
    )
}

#[test]
fn a_killed_muster_mid_rollout_is_recovered_by_the_next_run() {
    let env = Env::new("rollkill");
    env.write("compose.yaml", &web_compose(V1, 3, true));
    let files = ["compose.yaml"];
    env.up(&files);
    let client = env.client("web");

    // Kill it right after it created the second new container: the first batch
    // is done, the second container is not ready (and not serving) yet.
    let mut created = 0;
    let events = rollout_killed_at(&env, &files, V2, "2s", |e| {
        if e["event"] == "created" {
            created += 1;
        }
        created == 2
    });
    assert!(events.iter().any(|e| e["event"] == "removed"), "{events:?}");

    // What the killed muster left: a record of the unfinished rollout, and
    // nothing serving that is not old or new-and-ready.
    let key = format!("{}:{}:rollout:web", env.namespace, env.project.name);
    let record: serde_json::Value =
        serde_json::from_str(&redis_get(&env, &key).expect("in-progress record")).unwrap();
    assert_eq!(record["phase"], "running");
    assert_eq!(record["revision"], 2);
    let left = env.containers("web");
    for c in &left {
        let (serving, image, health) = serving_state(&c.id);
        if serving {
            assert!(
                image == V1 || (image == V2 && health == "healthy"),
                "{} serves as {image} ({health})",
                c.name
            );
        }
    }

    // The next run finishes it.
    let out = env.run(&files, &["rollout", "status", "web"]);
    assert!(out.status.success(), "recovery failed");
    let text = stdout(&out);
    assert!(text.contains("finishing it"), "{text}");
    assert!(text.contains("revision 2 succeeded"), "{text}");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let polls = client.stop();
    assert_polls(&polls, 3, 4);
    assert_eq!(polls.last().map(|p| p.body.as_str()), Some("v2"));

    let after = env.containers("web");
    assert_eq!(after.len(), 3, "no orphan container: {after:?}");
    assert!(
        after
            .iter()
            .all(|c| c.running && c.image == V2 && c.revision == Some(2)),
        "{after:?}"
    );
    assert!(redis_get(&env, &key).is_none(), "the record is gone");
    let h = history(&env, &files, "web");
    let revs = h["revisions"].as_array().unwrap();
    assert_eq!(revs.len(), 2, "{h}");
    assert_eq!(revs[0]["outcome"], "succeeded");
    assert_eq!(revs[0]["replaced"], 3);
    assert_eq!(revs[1]["kind"], "baseline");
}

#[test]
fn a_second_rollout_is_refused_while_one_runs_and_status_follows_it() {
    let env = Env::new("rolllock");
    env.write("compose.yaml", &web_compose(V1, 2, true));
    let files = ["compose.yaml"];
    env.up(&files);

    let (mut child, mut lines) = spawn_rollout(&env, &files, V2, "3s", "500ms");
    let pid = child.id();
    read_events_until(&mut lines, |e| e["event"] == "created");

    for args in [
        vec!["rollout", "web", "--image", V2],
        vec!["rollback", "web"],
    ] {
        let out = env.run(&files, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?} was not refused");
        let err = stderr(&out);
        assert!(err.contains("is being rolled out by"), "{err}");
        assert!(
            err.contains(&format!("pid {pid}")),
            "the owner is named: {err}"
        );
    }

    // `rollout status` follows the running rollout to its end.
    let out = env.run(&files, &["rollout", "status", "web"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains(&format!("pid {pid}]")), "{text}");
    assert!(text.contains("followed the rollout"), "{text}");
    // Drain the first muster's output and let it finish.
    for _ in lines.by_ref() {}
    assert!(child.wait().unwrap().success());
    assert!(env
        .containers("web")
        .iter()
        .all(|c| c.image == V2 && c.revision == Some(2)));
}

#[test]
fn ctrl_c_stops_at_a_safe_point_and_resume_finishes() {
    let env = Env::new("rollint");
    env.write("compose.yaml", &web_compose(V1, 2, true));
    let files = ["compose.yaml"];
    env.up(&files);
    let before = env.containers("web");

    let (mut child, mut lines) = spawn_rollout(&env, &files, V2, "3s", "500ms");
    read_events_until(&mut lines, |e| e["event"] == "created");
    // Ctrl-C while the first new container is being readied / monitored.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest = read_events_until(&mut lines, |e| e["event"] == "done");
    assert_eq!(
        child.wait().unwrap().code(),
        Some(1),
        "an interrupted rollout exits 1"
    );
    assert!(
        rest.iter()
            .any(|e| e["event"] == "removed"
                && e["why"].as_str().unwrap_or("").contains("interrupted")),
        "the new container that was not through was removed: {rest:?}"
    );
    let done = rest.last().unwrap();
    assert_eq!(done["outcome"], "paused");

    // Every container left is an old one, serving; the record says paused.
    let after = env.containers("web");
    let ids = |v: &[Container]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&before), "{after:?}");
    for c in &after {
        assert!(serving_state(&c.id).0, "{} does not serve", c.name);
    }
    let key = format!("{}:{}:rollout:web", env.namespace, env.project.name);
    let record: serde_json::Value = serde_json::from_str(&redis_get(&env, &key).unwrap()).unwrap();
    assert_eq!(record["phase"], "paused");

    let out = env.run(&files, &["rollout", "status", "web"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a paused rollout is reported, not resumed"
    );
    let out = env.run(&files, &["rollout", "status", "web", "--resume"]);
    assert!(out.status.success(), "resume failed");
    assert!(
        stdout(&out).contains("revision 2 succeeded"),
        "{}",
        stdout(&out)
    );
    assert!(env
        .containers("web")
        .iter()
        .all(|c| c.image == V2 && c.running && c.revision == Some(2)));
}

/// A muster killed as it turns back from a failed rollout: the next run
/// finishes the rollout (here it fails again and returns to revision 1) and
/// its report and history count the failures next to the message that
/// names them.
#[test]
fn a_kill_as_the_way_back_begins_is_finished_with_its_failure_count() {
    let env = Env::new("rollbackkill");
    env.write("compose.yaml", &web_compose(V1, 2, false));
    env.write("probes.yaml", PROBES);
    env.up(&["compose.yaml"]);
    let files = ["compose.yaml", "probes.yaml"];

    let events = rollout_killed_at(&env, &files, BAD, "1s", |e| e["event"] == "reverting");
    let failed = events
        .iter()
        .filter(|e| e["event"] == "container_failed")
        .count();
    assert!(failed >= 1, "{events:?}");

    let out = env.run(&files, &["--json", "rollout", "status", "web"]);
    let report: serde_json::Value = serde_json::from_str(
        stdout(&out)
            .lines()
            .last()
            .expect("a JSON report on the last line"),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    let result = &report["result"];
    assert_eq!(result["outcome"], "rolled_back", "{report}");
    assert_eq!(
        result["failures"], failed as u64,
        "the failures of the rollout it reverted: {report}"
    );
    let h = history(&env, &files, "web");
    assert_eq!(h["revisions"][0]["failures"], failed as u64, "{h}");
}
