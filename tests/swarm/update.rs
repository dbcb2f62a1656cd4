//! Re-running `up --swarm` with a changed compose file updates the services
//! whose spec changed (environment, replicas: Swarm's service update at the
//! current version) and leaves the unchanged ones alone.

use crate::support::hosts::{self, SwarmStack};
use crate::support::text;

const BEFORE: &str = r#"
services:
  cache:
    image: muster-test/redis:1
    x-muster:
      probes:
        - redis: { url: "redis://cache:6379" }
  queue:
    image: muster-test/redis:1
    environment:
      MODE: one
    x-muster:
      probes:
        - redis: { url: "redis://queue:6379" }
"#;

fn report_row(report: &serde_json::Value, service: &str) -> (bool, bool, usize) {
    let s = report["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("{service} in {report}"));
    let ready = s["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["ready"] == true)
        .count();
    (s["created"] == true, s["updated"] == true, ready)
}

#[test]
fn a_changed_service_is_updated_and_an_unchanged_one_left_alone() {
    let _use = hosts::hold();
    let cluster = hosts::shared();
    let stack = SwarmStack::new(cluster.clone(), "upd");
    let out = stack.up(BEFORE, None, &["--json", "--wait-timeout", "120s"]);
    assert!(out.status.success(), "{}", text(&out));
    let version = |service: &str| stack.inspect(service, "{{.Version.Index}}");
    let (cache_v, queue_v) = (version("cache"), version("queue"));

    // The same file again: nothing changes.
    let out = stack.up(BEFORE, None, &["--json", "--wait-timeout", "120s"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report_row(&report, "queue"), (false, false, 1));
    assert_eq!(
        (version("cache"), version("queue")),
        (cache_v.clone(), queue_v.clone())
    );

    // queue's environment and replicas change: updated; cache left alone.
    let after = BEFORE.replace("MODE: one", "MODE: two").replace(
        "    environment:",
        "    deploy: { replicas: 2 }\n    environment:",
    );
    let out = stack.up(&after, None, &["--json", "--wait-timeout", "120s"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report_row(&report, "cache"), (false, false, 1), "{report}");
    assert_eq!(report_row(&report, "queue"), (false, true, 2), "{report}");
    assert_eq!(version("cache"), cache_v, "cache not touched");
    assert_ne!(version("queue"), queue_v);
    assert_eq!(
        stack.inspect("queue", "{{.Spec.Mode.Replicated.Replicas}}"),
        "2"
    );
    assert!(
        stack
            .inspect("queue", "{{.Spec.TaskTemplate.ContainerSpec.Env}}")
            .contains("MODE=two"),
        "{all}"
    );
}
