//! `muster up` pulls what is missing; `--pull never` refuses; `muster pull
//! --json` pulls each image once however many services use it.

use crate::support::registry::{image_present, Registry};
use crate::support::{text, Muster};
use crate::{local_name, pushed, Stack};

#[test]
fn up_pulls_a_missing_image_and_starts_the_service() {
    let registry = Registry::start();
    let (image, _guard) = pushed(&registry, &local_name("up"), "muster/up:1", 6 << 20, 2);
    let stack = Stack::new("pullup", &[("app", &image, "")]);

    // `--pull never` refuses the missing image and starts nothing.
    let out = stack.muster(Muster::new(), &["up", "--pull", "never"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(&image) && all.contains("not present"), "{all}");
    assert!(!image_present(&image));

    let out = stack.muster(Muster::new(), &["up"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("pulling {image} (for app)")), "{all}");
    assert!(all.contains(&format!("{image}: pulled")), "{all}");
    assert!(all.contains("layers"), "{all}");
    assert!(image_present(&image));
    let ps = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", &stack.project.label_filter()])
        .output()
        .expect("docker ps");
    assert_eq!(String::from_utf8_lossy(&ps.stdout).lines().count(), 1);
}

#[test]
fn pull_json_pulls_each_image_once_and_skips_never() {
    let registry = Registry::start();
    let (image, _guard) = pushed(
        &registry,
        &local_name("json"),
        "muster/shared:1",
        4 << 20,
        1,
    );
    let stack = Stack::new(
        "pulljson",
        &[
            ("a", &image, ""),
            ("b", &image, ""),
            ("c", "muster-test/never-here:1", "pull_policy: never"),
        ],
    );
    let began = std::time::Instant::now();
    let out = stack.muster(Muster::new(), &["pull", "--json"]);
    let elapsed = began.elapsed();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let started: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["event"] == "started").collect();
    assert_eq!(started.len(), 1, "{all}");
    assert_eq!(started[0]["image"], image.as_str());
    assert_eq!(started[0]["services"], serde_json::json!(["a", "b"]));
    let progress = lines.iter().filter(|l| l["event"] == "progress").count();
    assert!(
        progress as u64 <= elapsed.as_secs() + 1,
        "{progress} progress events in {elapsed:?}: at most one a second"
    );
    let done: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "done").collect();
    assert_eq!(done.len(), 1, "{all}");
    assert!(
        done[0]["downloaded"].as_u64().unwrap_or(0) >= 4 << 20,
        "{all}"
    );
    let result = &lines.last().expect("a result line")["result"];
    assert_eq!(result["pulled"].as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(
        result["skipped"]["muster-test/never-here:1"], "pull_policy: never",
        "{all}"
    );
    assert!(image_present(&image));

    // pull_policy: missing skips a present image; the default pulls again.
    let stack = Stack::new("pullmissing", &[("a", &image, "pull_policy: missing")]);
    let out = stack.muster(Muster::new(), &["pull"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("already present"), "{all}");
    assert!(all.contains("0 pulled, 1 skipped, 0 failed"), "{all}");
}
