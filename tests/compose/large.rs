//! Large generated files (issue 15, item 11): loading is linear in the input, so a
//! 101 000-key mapping loads and every key reaches `muster config --json`; the alias
//! budget counts what aliases copy, so a file without aliases is never called a
//! bomb, an alias-heavy generated stack still loads, and billion laughs is refused
//! with the file, the line and the budget in the message.

use std::fmt::Write as _;
use std::process::Output;

use crate::support::compose::fixtures;
use crate::support::{Muster, TempDir};
use muster::compose::{self, LoadOptions};

const KEYS: usize = 101_000;

fn config_json(dir: &TempDir, file: &str) -> Output {
    let mut cmd = Muster::new().dir(dir.path());
    cmd.run(&["config", "-f", file, "--json"])
}

/// `count` lines `{indent}{line(i)}` appended to `text`.
fn lines(text: &mut String, indent: &str, count: usize, line: impl Fn(usize) -> String) {
    for i in 0..count {
        text.push_str(indent);
        text.push_str(&line(i));
        text.push('\n');
    }
}

/// One service `app` whose `environment` has `KEYS` keys `KEY_i: value(i)`.
fn environment_text(value: impl Fn(usize) -> String) -> String {
    let mut text = String::from("services:\n  app:\n    image: busybox\n    environment:\n");
    lines(&mut text, "      ", KEYS, |i| {
        format!("KEY_{i}: {}", value(i))
    });
    text
}

fn options(dir: &TempDir, file: &str) -> LoadOptions {
    LoadOptions {
        files: vec![dir.path().join(file)],
        environment: Some(Default::default()),
        working_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    }
}

#[test]
fn a_101000_key_mapping_loads_and_every_key_is_in_config_json() {
    let dir = TempDir::new("muster-large");
    let mut text = environment_text(|i| format!("value-{i}"));
    text.push_str("    labels:\n");
    lines(&mut text, "      ", KEYS, |i| {
        format!("com.example.label-{i}: l{i}")
    });
    std::fs::write(dir.path().join("big.yaml"), &text).expect("write big.yaml");

    let out = config_json(&dir, "big.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "muster config failed: {stderr}");
    assert!(!stderr.contains("alias bomb"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("config --json is JSON");
    let app = &v["services"]["app"];
    let env = app["environment"].as_object().expect("environment object");
    let labels = app["labels"].as_object().expect("labels object");
    assert_eq!(env.len(), KEYS);
    assert_eq!(labels.len(), KEYS);
    for i in 0..KEYS {
        assert_eq!(env[&format!("KEY_{i}")], format!("value-{i}"), "KEY_{i}");
        assert_eq!(labels[&format!("com.example.label-{i}")], format!("l{i}"));
    }
}

#[test]
fn a_duplicate_key_in_a_large_mapping_is_still_found() {
    let dir = TempDir::new("muster-large-dup");
    let mut text = environment_text(|_| "v".to_string());
    text.push_str("      KEY_70000: again\n");
    std::fs::write(dir.path().join("dup.yaml"), &text).expect("write dup.yaml");
    let err = compose::load(&options(&dir, "dup.yaml")).expect_err("duplicate key accepted");
    // KEY_0 is on line 5, so KEY_70000 on line 70005; the duplicate follows the last key.
    let expected = format!(
        "{}:{}:7: duplicate key \"KEY_70000\" (first defined at line 70005)",
        dir.path().join("dup.yaml").display(),
        KEYS + 5
    );
    assert_eq!(err.to_string(), expected);
}

/// The bomb fixture: 9 levels of 9 aliases, 387M nodes if expanded.
fn billion_laughs() -> String {
    std::fs::read_to_string(fixtures().join("bad/bomb.yaml")).expect("read bad/bomb.yaml")
}

#[test]
fn billion_laughs_is_refused_naming_file_line_and_budget() {
    let dir = TempDir::new("muster-bomb");
    std::fs::write(dir.path().join("bomb.yaml"), billion_laughs()).expect("write bomb");
    let out = config_json(&dir, "bomb.yaml");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Line 6 is `f`, whose second `*e` (column 11) passes 200 000 copied nodes.
    assert!(
        stderr.contains("bomb.yaml:6:11: document expands to more than 200000 nodes through aliases (YAML alias bomb?); refused"),
        "{stderr}"
    );
}

#[test]
fn billion_laughs_after_a_large_document_is_refused_too() {
    // The allowance grows with the text read (4 copied nodes per written node), so
    // the bomb gets further, but it is still refused long before it costs memory.
    let dir = TempDir::new("muster-bomb-late");
    let mut text = String::from("x-padding:\n");
    lines(&mut text, "  ", KEYS, |i| format!("k{i}: v"));
    let padding_lines = KEYS + 1;
    text.push_str(&billion_laughs());
    std::fs::write(dir.path().join("late.yaml"), &text).expect("write late.yaml");
    let err = compose::load(&options(&dir, "late.yaml")).expect_err("bomb accepted");
    let message = err.to_string();
    let prefix = format!("{}:", dir.path().join("late.yaml").display());
    let rest = message
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{message}"));
    // 202 026 nodes are written when `g` (line 7 of the bomb) starts: 808 104 may
    // be copied, and its first `*f` (column 8) passes that.
    assert_eq!(
        rest,
        format!(
            "{}:8: document expands to more than 808104 nodes through aliases (YAML alias bomb?); refused",
            padding_lines + 7
        ),
        "{message}"
    );
}

#[test]
fn an_alias_heavy_generated_stack_loads() {
    // 30 000 services merging two anchors and aliasing a third: 690 000 nodes copied
    // through aliases, more than the fixed 200 000 allowance (210 000 written).
    const SERVICES: usize = 30_000;
    let dir = TempDir::new("muster-anchors");
    let mut text = String::from(
        "x-common: &common\n  restart: unless-stopped\n  labels:\n    com.example.stack: big\n  stop_signal: SIGTERM\nx-health: &health\n  healthcheck:\n    test: [\"CMD\", \"true\"]\n    interval: 5s\nx-env: &env\n  MODE: production\n  REGION: eu\nservices:\n",
    );
    for i in 0..SERVICES {
        let _ = writeln!(
            text,
            "  s{i}:\n    <<: [*common, *health]\n    image: img:{i}\n    environment: *env"
        );
    }
    std::fs::write(dir.path().join("anchors.yaml"), &text).expect("write anchors.yaml");
    let project = compose::load(&options(&dir, "anchors.yaml"))
        .unwrap_or_else(|e| panic!("alias-heavy file refused: {e}"));
    assert_eq!(project.services.len(), SERVICES);
    for i in [0, 1, SERVICES / 2, SERVICES - 1] {
        let s = &project.services[&format!("s{i}")];
        assert_eq!(s.image.as_deref(), Some(format!("img:{i}").as_str()));
        assert_eq!(s.restart.as_deref(), Some("unless-stopped"));
        assert_eq!(s.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(s.labels["com.example.stack"], "big");
        assert_eq!(s.environment["REGION"].as_deref(), Some("eu"));
        let hc = s.healthcheck.as_ref().expect("merged healthcheck");
        assert_eq!(hc.interval, std::time::Duration::from_secs(5));
    }
}
