//! Bad input to `muster rollout` / `rollback` / `history`: each is a clear
//! error with a non-zero exit, and nothing is changed (same containers, no
//! revision recorded).

use crate::support::rollout::*;

#[test]
fn bad_input_is_refused_before_anything_changes() {
    let env = Env::new("rollinput");
    let compose = format!("{}  worker:\n    image: {V1}\n", web_compose(V1, 2, true));
    env.write("compose.yaml", &compose);
    let files = ["compose.yaml"];
    // Only web runs; worker was never started.
    let out = env.run(&files, &["up", "web", "--wait-timeout", "60s"]);
    assert!(out.status.success());
    let before = env.containers("web");
    assert_eq!(before.len(), 2);
    let ids = |v: &[Container]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();

    let refused = |args: &[&str], needles: &[&str]| {
        let out = env.run(&files, args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} should fail with exit 1"
        );
        let err = stderr(&out);
        assert!(err.starts_with("muster: error: "), "{err}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
        }
    };

    // An image that is not on the engine and cannot be pulled (its registry
    // refuses connections): named with the registry's reason, nothing stopped.
    refused(
        &[
            "rollout",
            "web",
            "--image",
            "127.0.0.1:1/muster-test/web:missing",
        ],
        &[
            "127.0.0.1:1/muster-test/web:missing",
            "could not be pulled",
            "connection refused",
            "nothing was changed",
        ],
    );
    // A service that does not run.
    refused(
        &["rollout", "worker", "--image", V2],
        &["service worker is not running", "muster up worker"],
    );
    // A service that does not exist.
    refused(&["rollout", "nosuch"], &["no such service: nosuch", "web"]);
    // A monitor window shorter than the healthcheck can fail in (200ms × 3).
    refused(
        &["rollout", "web", "--image", V2, "--monitor", "100ms"],
        &[
            "monitor 100ms is shorter than 600ms",
            "retries 3",
            "--force",
        ],
    );
    // stop-first with nothing allowed down.
    refused(
        &[
            "rollout",
            "web",
            "--image",
            V2,
            "--order",
            "stop-first",
            "--max-unavailable",
            "0",
        ],
        &["--max-unavailable must be at least 1"],
    );
    refused(
        &["rollout", "web", "--order", "sideways"],
        &["--order", "sideways"],
    );
    // A bad duration is a usage error (exit 2), as in every subcommand.
    let out = env.run(&files, &["rollout", "web", "--monitor", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid value 'soon' for '--monitor <DURATION>'"),
        "{}",
        stderr(&out)
    );
    refused(
        &["rollout", "web", "--env", "NOEQUALS"],
        &["--env \"NOEQUALS\"", "KEY=VALUE"],
    );
    refused(
        &["rollout", "web", "worker", "--image", V2],
        &["SERVICE=REF"],
    );
    refused(
        &["rollout", "web", "--image", V2, "--max-failure-ratio", "2"],
        &["between 0 and 1"],
    );
    // Nothing to go back to yet.
    refused(&["rollback", "web"], &["nothing to go back to"]);

    assert_eq!(
        ids(&env.containers("web")),
        ids(&before),
        "containers changed"
    );
    assert!(env.containers("worker").is_empty());
    let h = history(&env, &files, "web");
    assert!(
        h["revisions"].as_array().unwrap().is_empty(),
        "a refused rollout recorded a revision: {h}"
    );
    let out = env.run(&files, &["history", "web"]);
    assert!(stdout(&out).contains("no revisions recorded yet"));
}
