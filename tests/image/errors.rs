//! The registry's own reasons, with service, image and registry named:
//! an unknown tag (manifest unknown), a registry that is down (connection
//! refused). Exit 1, nothing started.

use crate::support::registry::Registry;
use crate::support::{text, Muster};
use crate::{local_name, pushed, Stack};

#[test]
fn unknown_tag_is_manifest_unknown() {
    let registry = Registry::start();
    let (_image, _guard) = pushed(&registry, &local_name("tag"), "muster/tagged:1", 1 << 20, 1);
    let missing = registry.image("muster/tagged:nope");
    let stack = Stack::new("pulltag", &[("web", &missing, "")]);
    let out = stack.muster(Muster::new(), &["up"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("web") && all.contains("failed"), "{all}");
    assert!(all.contains("manifest unknown"), "{all}");
    assert!(
        all.contains(&missing) && all.contains(&registry.host()),
        "{all}"
    );
}

#[test]
fn registry_down_is_connection_refused() {
    let mut registry = Registry::start();
    let image = registry.image("muster/gone:1");
    registry.kill();
    let stack = Stack::new("pulldown", &[("web", &image, "")]);
    let out = stack.muster(Muster::new(), &["pull", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let failed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["event"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{all}");
    assert_eq!(failed[0]["kind"], "connection_refused", "{all}");
    assert_eq!(failed[0]["services"], serde_json::json!(["web"]));
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&registry.host()) && error.contains("connection refused"),
        "{error}"
    );
}
