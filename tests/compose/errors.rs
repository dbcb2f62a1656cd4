//! Every bad input of issue 2 fails with a message naming file:line:col and the
//! field; unknown fields only warn, with a "did you mean" hint.

use std::time::{Duration, Instant};

use crate::support::compose::*;

#[test]
fn yaml_syntax_error_names_file_line_column() {
    assert_eq!(
        load_err(&["bad/syntax.yaml"], &[]),
        "bad/syntax.yaml:5:16: YAML syntax error: illegal placement of ':' indicator"
    );
}

#[test]
fn unknown_service_in_depends_on() {
    assert_eq!(
        load_err(&["bad/unknown-dep.yaml"], &[]),
        "bad/unknown-dep.yaml:7:7: services.api.depends_on: service \"api\" depends on undefined service \"ghost\""
    );
}

#[test]
fn dependency_cycle_is_named() {
    assert_eq!(
        load_err(&["bad/cycle.yaml"], &[]),
        "bad/cycle.yaml:4:18: services.a.depends_on: dependency cycle: a -> b -> c -> a"
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        load_err(&["bad/duration.yaml"], &[]),
        "bad/duration.yaml:6:17: services.api.healthcheck.interval: invalid duration \"30 seconds\": unknown unit \" seconds\" (expected a Go duration such as \"1m30s\", \"1.5h\", \"300ms\", \"2d\")"
    );
}

#[test]
fn missing_required_variable_shows_its_message() {
    assert_eq!(
        load_err(&["bad/missing-var.yaml"], &[]),
        "bad/missing-var.yaml:5:16: services.api.environment.API_KEY: required variable API_KEY is missing a value: API_KEY must be set to the vault key"
    );
    assert!(load(&["bad/missing-var.yaml"], &[("API_KEY", "k")]).is_ok());
}

#[test]
fn service_without_image_or_build() {
    assert_eq!(
        load_err(&["bad/no-image.yaml"], &[]),
        "bad/no-image.yaml:4:3: services.broken: service \"broken\" has neither an image nor a build context specified"
    );
}

#[test]
fn alias_bomb_is_refused_fast_with_bounded_memory() {
    let start = Instant::now();
    let err = load_err(&["bad/bomb.yaml"], &[]);
    assert_eq!(
        err,
        "bad/bomb.yaml:6:11: document expands to more than 200000 nodes through aliases (YAML alias bomb?); refused"
    );
    // Refused before expanding, not after building 387M nodes (which would
    // take far longer than the guard); how fast and with how little memory
    // is the compose_load bench's.
    assert!(
        start.elapsed() < crate::support::HANG_GUARD,
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn start_interval_without_start_period() {
    assert_eq!(
        load_err(&["bad/start-interval.yaml"], &[]),
        "bad/start-interval.yaml:6:23: services.api.healthcheck.start_interval: start_interval requires start_period to be set (Compose refuses start_interval without start_period)"
    );
}

#[test]
fn bad_probes_name_file_and_field() {
    assert_eq!(
        load_err(&["bad/probe-kind.yaml"], &[]),
        "bad/probe-kind.yaml:7:11: services.cache.x-muster.probes[1]: invalid x-muster settings: unknown probe kind `reddis` (expected one of redis, nats, http, tcp, exec, docker, agent); did you mean `redis`?"
    );
    assert_eq!(
        load_err(&["bad/probe-field.yaml"], &[]),
        "bad/probe-field.yaml:6:11: services.cache.x-muster.probes[0]: invalid x-muster settings: redis probe: unknown field `pasword`, expected one of `url`, `require`, `role`, `replication_link_up`, `key_exists`, `ca_file`, `cert_file`, `key_file`"
    );
    assert_eq!(
        load_err(&["bad/probe-duration.yaml"], &[]),
        "bad/probe-duration.yaml:6:11: services.cache.x-muster.probes[0]: invalid x-muster settings: tcp probe: invalid duration \"5 seconds\": unknown unit \" seconds\" (expected a Go duration such as \"1m30s\", \"1.5h\", \"300ms\", \"2d\")"
    );
    assert_eq!(
        load_err(&["bad/grace.yaml"], &[]),
        "bad/grace.yaml:5:14: services.agent.x-muster.grace: invalid x-muster settings: grace must be auto, off or a duration: invalid duration \"forever\": expected a number (expected a Go duration such as \"1m30s\", \"1.5h\", \"300ms\", \"2d\")"
    );
    assert_eq!(
        load_err(&["bad/muster-field.yaml"], &[]),
        "bad/muster-field.yaml:5:14: services.agent.x-muster.probs: invalid x-muster settings: unknown field `probs`; did you mean `probes`?"
    );
}

#[test]
fn other_bad_values() {
    assert_eq!(
        load_err(&["bad/bad-port.yaml"], &[]),
        "bad/bad-port.yaml:4:13: services.a.ports[0]: invalid port \"99999\""
    );
    assert_eq!(
        load_err(&["bad/bad-interp.yaml"], &[]),
        "bad/bad-interp.yaml:4:14: services.a.command: invalid interpolation format: `${1}` has no variable name"
    );
    assert_eq!(
        load_err(&["bad/bad-name.yaml"], &[]),
        "bad/bad-name.yaml:1:7: name: project name \"My_Stack\" is not valid: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit"
    );
    assert_eq!(
        load_err(&["bad/not-a-map.yaml"], &[]),
        "bad/not-a-map.yaml:1:1: (top level): a compose file is a mapping, found a list"
    );
    let missing = load_err(&["bad/does-not-exist.yaml"], &[]);
    assert_eq!(missing, "bad/does-not-exist.yaml: no such compose file");
}

#[test]
fn unknown_fields_warn_with_did_you_mean() {
    let (p, warnings) = load_warnings(&["bad/typo.yaml"], &[]);
    assert!(
        p.services.contains_key("api"),
        "unknown fields do not fail loading"
    );
    let messages: Vec<String> = warnings
        .iter()
        .map(|w| w.message.replace(&format!("{}/", fixtures().display()), ""))
        .collect();
    assert!(
        messages.contains(&"bad/typo.yaml:4:5: unknown field `services.api.helthcheck` ignored; did you mean `healthcheck`?".to_string()),
        "{messages:#?}"
    );
    assert!(messages.contains(
        &"bad/typo.yaml:6:5: unknown field `services.api.restrat` ignored; did you mean `restart`?"
            .to_string()
    ));
    assert!(messages.contains(&"bad/typo.yaml:9:7: unknown field `services.api.healthcheck.intervall` ignored; did you mean `interval`?".to_string()));
    assert!(messages.contains(
        &"bad/typo.yaml:10:5: unknown field `services.api.totally_unrelated_key` ignored"
            .to_string()
    ));
}

/// compose-go `loader_test.go` TestEmptyFile: a file with no YAML document
/// is "empty compose file", not an empty project (issue 15 item 12, #17).
#[test]
fn empty_file_is_refused() {
    let e = load_err(&["empty-comments-only.yaml"], &[]);
    assert_eq!(
        e,
        "empty-comments-only.yaml: empty compose file (it has no YAML document; give it at least a `services:` key)"
    );
}

#[test]
fn unknown_pull_policy_lists_the_allowed_values() {
    assert_eq!(
        load_err(&["bad/pull-policy.yaml"], &[]),
        "bad/pull-policy.yaml:5:18: services.api.pull_policy: invalid pull_policy \"sometimes\" (expected one of always, missing, never, build, if_not_present, daily, weekly, every_<duration> (every_12h))"
    );
}

#[test]
fn every_pull_policy_is_read() {
    use muster::compose::PullPolicy;
    let p = load_ok(&["pull-policies.yaml"], &[]);
    let policy = |s: &str| p.services[s].pull_policy;
    assert_eq!(policy("a"), Some(PullPolicy::Always));
    assert_eq!(policy("b"), Some(PullPolicy::Missing));
    assert_eq!(policy("c"), Some(PullPolicy::Never));
    assert_eq!(
        policy("d"),
        Some(PullPolicy::Refresh(Duration::from_secs(86_400)))
    );
    assert_eq!(
        policy("e"),
        Some(PullPolicy::Refresh(Duration::from_secs(7 * 86_400)))
    );
    assert_eq!(
        policy("f"),
        Some(PullPolicy::Refresh(Duration::from_secs(12 * 3600)))
    );
    assert_eq!(policy("g"), None);
    assert_eq!(policy("h"), Some(PullPolicy::Build));
    assert_eq!(
        policy("f").map(|p| p.to_string()).as_deref(),
        Some("every_12h0m0s")
    );
    let e = muster::compose::PullPolicy::parse("every_0s")
        .unwrap_err()
        .to_string();
    assert!(e.contains("above 0"), "{e}");
    let e = muster::compose::PullPolicy::parse("every_soon")
        .unwrap_err()
        .to_string();
    assert!(e.contains("every_soon"), "{e}");
}

#[test]
fn bad_swarm_mode_and_ready_tasks_are_named() {
    assert_eq!(
        load_err(&["bad/swarm-mode.yaml"], &[]),
        "bad/swarm-mode.yaml:5:13: services.agent.deploy.mode: invalid mode \"everywhere\" (replicated or global)"
    );
    let e = load_err(&["bad/ready-tasks.yaml"], &[]);
    assert!(
        e.starts_with("bad/ready-tasks.yaml:5:20: ")
            && e.contains("ready_tasks")
            && e.contains("1 or more"),
        "{e}"
    );
}
