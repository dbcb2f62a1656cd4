//! Several files merged with Compose's rules, `!reset` / `!override`, `extends`
//! (same file and other file) and `include`.

use std::time::Duration;

use crate::support::compose::*;
use muster::compose::{Condition, HealthTest, VolumeType};

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn merged() -> muster::compose::Project {
    load_ok(
        &["merge-base.yaml", "merge-override.yaml"],
        &[("COMPOSE_PROFILES", "b")],
    )
}

#[test]
fn scalars_are_replaced_and_maps_merge() {
    let p = merged();
    let api = &p.services["api"];
    assert_eq!(api.image.as_deref(), Some("api:2"));
    let limits = api
        .deploy
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits.memory, Some(2 << 30), "override's memory");
    assert_eq!(limits.cpus, Some(1.0), "base's cpus kept by the map merge");
    assert!(
        p.volumes.contains_key("data") && p.volumes.contains_key("other"),
        "top-level maps merge"
    );
}

#[test]
fn command_and_entrypoint_are_replaced_profiles_are_unioned() {
    let p = merged();
    let api = &p.services["api"];
    assert_eq!(api.command, Some(vec!["serve".to_string()]));
    assert_eq!(
        api.entrypoint,
        Some(vec!["/other-entry.sh".to_string(), "-x".to_string()])
    );
    // compose-go override/merge_profiles_test.go TestMergeProfilesUnicity:
    // both files' profiles, each once.
    assert_eq!(api.profiles, vec!["a", "b"]);
    let only_a = load_ok(
        &["merge-base.yaml", "merge-override.yaml"],
        &[("COMPOSE_PROFILES", "a")],
    );
    assert!(
        only_a.services.contains_key("api"),
        "profile a is still one of api's"
    );
}

#[test]
fn ports_append_and_only_repeats_are_dropped() {
    // compose-go appends `ports` on merge and then removes repeats
    // (override/uncity.go, Test_PortsShortUnicity): 8080:80 from the base
    // stays next to the override's 18080:80.
    let api = &merged().services["api"];
    let got: Vec<(u16, Option<&str>)> = api
        .ports
        .iter()
        .map(|p| (p.target, p.published.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (80, Some("8080")),
            (90, Some("9090")),
            (80, Some("18080")),
            (70, Some("7070"))
        ]
    );
}

#[test]
fn volumes_merge_by_target() {
    let api = &merged().services["api"];
    let got: Vec<(&str, VolumeType, Option<&str>)> = api
        .volumes
        .iter()
        .map(|v| (v.target.as_str(), v.kind, v.source.as_deref()))
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0],
        ("/data", VolumeType::Volume, Some("other")),
        "same target replaced"
    );
    assert_eq!(got[1].0, "/etc/conf");
    assert_eq!(got[2].0, "/logs");
}

#[test]
fn environment_and_labels_merge_by_key_across_list_and_map_forms() {
    let api = &merged().services["api"];
    assert_eq!(api.environment["A"], s("base"));
    assert_eq!(api.environment["B"], s("override"));
    assert_eq!(api.environment["C"], s("override"));
    assert_eq!(api.labels["tier"], "web");
    assert_eq!(api.labels["owner"], "override");
    let build = api.build.as_ref().unwrap();
    assert_eq!(
        (build.args["X"].clone(), build.args["Y"].clone()),
        (s("1"), s("2")),
        "build.args merge"
    );
}

#[test]
fn depends_on_networks_and_healthcheck_merge() {
    let api = &merged().services["api"];
    assert_eq!(
        api.depends_on["db"].condition,
        Condition::ServiceHealthy,
        "short form upgraded by long form"
    );
    assert!(!api.depends_on["cache"].required);
    assert!(api.networks.contains_key("front"));
    assert_eq!(api.networks["back"].aliases, vec!["api-back"]);
    let hc = api.healthcheck.as_ref().unwrap();
    assert_eq!(
        hc.test,
        Some(HealthTest::Cmd(vec!["new-check".into()])),
        "test replaced, not appended"
    );
    assert_eq!(hc.interval, Duration::from_secs(10), "base interval kept");
    assert_eq!(hc.retries, 5, "base retries kept");
    assert_eq!(hc.timeout, Duration::from_secs(3), "override timeout");
}

#[test]
fn env_file_appends_without_duplicates() {
    let api = &merged().services["api"];
    let names: Vec<String> = api
        .env_file
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["base.env", "override.env"]);
    assert_eq!(api.environment["FROM_BASE_ENV"], s("1"));
    assert_eq!(api.environment["FROM_OVERRIDE_ENV"], s("1"));
}

#[test]
fn reset_and_override_tags() {
    let db = &merged().services["db"];
    assert!(db.ports.is_empty(), "ports: !reset []");
    assert!(db.labels.is_empty(), "labels: !reset {{}}");
    assert_eq!(
        db.environment.len(),
        1,
        "environment: !override replaces the whole map"
    );
    assert_eq!(db.environment["ONLY"], s("2"));
    assert_eq!(db.extensions["x-note"], serde_json::json!("override"));
}

#[test]
fn extends_in_the_same_file() {
    let p = load_ok(&["extends.yaml"], &[]);
    let middle = &p.services["middle"];
    assert_eq!(middle.image.as_deref(), Some("base:1"));
    assert_eq!(
        middle.restart.as_deref(),
        Some("always"),
        "inherited through a merge key"
    );
    assert_eq!(middle.environment["SHARED"], s("1"));
    assert_eq!(middle.environment["LEVEL"], s("middle"));
    let leaf = &p.services["leaf"];
    assert_eq!(leaf.environment["LEVEL"], s("middle"), "extends chains");
    assert_eq!(leaf.command, Some(vec!["leaf".into(), "--run".into()]));
    let hc = leaf.healthcheck.as_ref().unwrap();
    assert_eq!((hc.retries, hc.interval), (9, Duration::from_secs(7)));
}

#[test]
fn extends_from_another_file_rebases_paths() {
    let p = load_ok(&["extends.yaml"], &[]);
    let remote = &p.services["remote"];
    let common = fixtures().join("common");
    assert_eq!(
        remote.build.as_ref().unwrap().context,
        common.join("src").display().to_string()
    );
    assert_eq!(
        remote.volumes[0].source,
        Some(common.join("cache").display().to_string())
    );
    assert_eq!(remote.env_file[0].path, common.join("builder.env"));
    assert_eq!(
        remote.environment["BUILDER"],
        s("1"),
        "env_file read from the other directory"
    );
    assert_eq!(remote.environment["REMOTE"], s("1"));
    assert_eq!(remote.environment["LOCAL"], s("1"));
    assert_eq!(remote.environment["TAG"], s("remote-default"));
    let p = load_ok(&["extends.yaml"], &[("TAG", "shell")]);
    assert_eq!(
        p.services["remote"].environment["TAG"],
        s("shell"),
        "other file is interpolated"
    );
}

#[test]
fn include_adds_services_with_their_own_env_and_paths() {
    let p = load_ok(&["include-main.yaml"], &[]);
    assert_eq!(
        p.services.keys().collect::<Vec<_>>(),
        vec!["app", "cache", "tool"]
    );
    assert_eq!(p.services["cache"].image.as_deref(), Some("redis:7"));
    assert_eq!(
        p.services["tool"].image.as_deref(),
        Some("tool:from-include-env"),
        "include env_file"
    );
    assert_eq!(
        p.services["cache"].volumes[0].source,
        Some(fixtures().join("inc/redis.conf").display().to_string()),
        "relative to the included file"
    );
    assert!(p.volumes.contains_key("cache-data"));
    let p = load_ok(&["include-main.yaml"], &[("REDIS_TAG", "7.4")]);
    assert_eq!(p.services["cache"].image.as_deref(), Some("redis:7.4"));
}

#[test]
fn include_conflicts_and_cycles_are_errors() {
    assert_eq!(
        load_err(&["include-conflict.yaml"], &[]),
        "include-conflict.yaml:4:3: include: services.cache is also defined by an included file at inc/infra.yaml:3:5; Compose refuses conflicting definitions"
    );
    let err = load_err(&["include-cycle-a.yaml"], &[]);
    assert!(
        err.starts_with("include-cycle-b.yaml:1:11: include: include cycle: "),
        "{err}"
    );
    assert!(
        err.ends_with("include-cycle-a.yaml -> include-cycle-b.yaml -> include-cycle-a.yaml"),
        "{err}"
    );
}

#[test]
fn extends_cycle_is_an_error() {
    assert_eq!(
        load_err(&["extends-cycle.yaml"], &[]),
        "extends-cycle.yaml:3:5: services.a.extends: circular extends: a -> b -> a"
    );
}

#[test]
fn an_empty_service_in_an_override_changes_nothing() {
    let p = load_ok(&["merge-base.yaml", "merge-empty-override.yaml"], &[]);
    let db = &p.services["db"];
    assert_eq!(db.image.as_deref(), Some("db:1"));
    assert_eq!(db.ports.len(), 1);
}

#[test]
fn secrets_and_configs_merge_by_the_path_they_land_on() {
    // compose-go override/merge_mounts_test.go Test_mergeYamlServiceMount:
    // the lists append, then uncity.go's mountIndexer keeps one entry per
    // target (`target`, else /run/secrets/<source> for a secret and
    // /<source> for a config), the later one where the first stood.
    let dir = crate::support::TempDir::new("muster-merge-secrets");
    write_file(&dir.0, "s.txt", "x\n");
    write_file(
        &dir.0,
        "compose.yaml",
        "services:\n  test:\n    image: foo\n    secrets: [foo, bar, zot]\n    configs: [c, d]\n\
         secrets:\n  foo: {file: ./s.txt}\n  bar: {file: ./s.txt}\n  zot: {file: ./s.txt}\n\
         configs:\n  c: {file: ./s.txt}\n  d: {file: ./s.txt}\n",
    );
    write_file(
        &dir.0,
        "override.yaml",
        "services:\n  test:\n    image: foo\n    secrets:\n      - source: zot\n        target: /run/secrets/foo\n\
         \x20   configs:\n      - source: d\n        target: /c\n        mode: 0400\n",
    );
    let p = load_dir(&dir.0, &["compose.yaml", "override.yaml"], &[], Some("m"))
        .unwrap_or_else(|e| panic!("{e}"));
    let test = &p.services["test"];
    let secrets: Vec<(&str, Option<&str>)> = test
        .secrets
        .iter()
        .map(|r| (r.source.as_str(), r.target.as_deref()))
        .collect();
    assert_eq!(
        secrets,
        // The unwritten targets as transform/defaults.go then fills them.
        [
            ("zot", Some("/run/secrets/foo")),
            ("bar", Some("/run/secrets/bar")),
            ("zot", Some("/run/secrets/zot"))
        ]
    );
    let configs: Vec<(&str, Option<u32>)> = test
        .configs
        .iter()
        .map(|r| (r.source.as_str(), r.mode))
        .collect();
    assert_eq!(configs, [("d", Some(0o400)), ("d", None)]);
}

#[test]
fn label_files_gpus_and_device_reservations_append_across_files() {
    // compose-go override/merge.go: `label_file` is mergeToSequence (a lone
    // string is a one-item list); gpus and reservations.devices take the
    // default rule for lists, append (no de-duplication: the same request in
    // both files is asked twice). `gpus: all` is `[{count: all}]` by then.
    let dir = crate::support::TempDir::new("muster-merge-devices");
    write_file(&dir.0, "a.labels", "a=1\n");
    write_file(&dir.0, "b.labels", "b=2\n");
    let reservation = "    deploy:\n      resources:\n        reservations:\n          devices:\n            - capabilities: [gpu]\n";
    write_file(
        &dir.0,
        "compose.yaml",
        &format!("services:\n  app:\n    image: foo\n    label_file: ./a.labels\n    gpus: all\n{reservation}"),
    );
    write_file(
        &dir.0,
        "override.yaml",
        &format!("services:\n  app:\n    label_file: ./b.labels\n    gpus:\n      - driver: nvidia\n        count: 1\n{reservation}"),
    );
    let p = load_dir(&dir.0, &["compose.yaml", "override.yaml"], &[], Some("m"))
        .unwrap_or_else(|e| panic!("{e}"));
    let app = &p.services["app"];
    assert_eq!(
        app.label_file,
        [dir.0.join("a.labels"), dir.0.join("b.labels")]
    );
    assert_eq!(
        (app.labels.get("a"), app.labels.get("b")),
        (Some(&"1".to_string()), Some(&"2".to_string()))
    );
    let counts: Vec<i64> = app.runtime.gpus.iter().map(|g| g.count).collect();
    assert_eq!(counts, [-1, 1]);
    let reserved = app
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.as_ref())
        .map(|r| r.devices.len());
    assert_eq!(reserved, Some(2));
}
