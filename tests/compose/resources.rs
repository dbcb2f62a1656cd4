//! The resource, device and secret keys as the model reads them and as `up`
//! hands them to the engine (no engine needed here; tests/up/secrets.rs runs
//! them on the real one): Compose's precedence of `deploy.resources` over the
//! service keys (docker/compose `getDeployResources`), where each secret and
//! config goes, and refusals that name file, line, column and field.

use crate::support::compose::{load_dir, write_file};
use crate::support::TempDir;
use muster::compose::{FileKind, Project};
use muster::engine::translate::container_spec;

fn load(dir: &TempDir, text: &str, vars: &[(&str, &str)]) -> Result<Project, String> {
    write_file(&dir.0, "compose.yaml", text);
    load_dir(&dir.0, &["compose.yaml"], vars, Some("res")).map_err(|e| e.to_string())
}

#[test]
fn deploy_resources_win_over_the_service_keys_as_compose_applies_them() {
    let dir = TempDir::new("muster-resources");
    let p = load(
        &dir,
        "services:\n  app:\n    image: app:1\n    mem_limit: 1g\n    mem_reservation: 256m\n    \
         cpus: 2\n    pids_limit: 10\n    cpuset: \"0-1\"\n    memswap_limit: -1\n    \
         annotations: {com.example.a: b}\n    external_links: [redis_1, \"db_1:db\"]\n    \
         networks:\n      back: {ipv6_address: \"fd00::5\", mac_address: \"02:42:ac:11:00:05\"}\n    \
         deploy:\n      resources:\n        limits: {memory: 512m, cpus: \"0.5\"}\n\
         networks:\n  back: {}\n",
        &[],
    )
    .expect("loads");
    let rt = &p.services["app"].runtime;
    assert_eq!(rt.mem_limit, Some(1 << 30));
    assert_eq!(rt.memswap_limit, Some(-1));
    let spec = container_spec(&p, &p.services["app"], 1).expect("translates");
    let host = spec.body.host_config.expect("host config");
    assert_eq!(
        host.memory,
        Some(512 << 20),
        "deploy.resources.limits.memory wins"
    );
    assert_eq!(
        host.nano_cpus,
        Some(500_000_000),
        "deploy.resources.limits.cpus wins"
    );
    assert_eq!(
        host.memory_reservation,
        Some(256 << 20),
        "mem_reservation (no deploy reservation)"
    );
    assert_eq!(host.pids_limit, Some(10));
    assert_eq!(host.cpuset_cpus.as_deref(), Some("0-1"));
    assert_eq!(host.memory_swap, Some(-1));
    assert_eq!(
        host.annotations
            .unwrap_or_default()
            .get("com.example.a")
            .map(String::as_str),
        Some("b")
    );
    assert_eq!(
        host.links,
        Some(vec!["redis_1:redis_1".to_string(), "db_1:db".to_string()]),
        "docker/compose gives an alias-less external link its own name"
    );
    let endpoint = spec
        .body
        .networking_config
        .and_then(|n| n.endpoints_config)
        .and_then(|e| e.into_values().next())
        .expect("an endpoint");
    assert_eq!(endpoint.mac_address.as_deref(), Some("02:42:ac:11:00:05"));
    assert_eq!(
        endpoint.ipam_config.and_then(|i| i.ipv6_address).as_deref(),
        Some("fd00::5")
    );
}

#[test]
fn secrets_and_configs_are_placed_where_compose_puts_them() {
    let dir = TempDir::new("muster-secret-places");
    write_file(&dir.0, "token.txt", "t");
    let p = load(
        &dir,
        "services:\n  app:\n    image: app:1\n    secrets: [token, {source: env, target: e}]\n    \
         configs: [{source: conf}]\nsecrets:\n  token: {file: ./token.txt}\n  env: {environment: E}\n\
         configs:\n  conf: {content: x}\n",
        &[("E", "value-7")],
    )
    .expect("loads");
    let app = &p.services["app"];
    assert_eq!(
        app.secrets[0].container_path(FileKind::Secret),
        "/run/secrets/token"
    );
    assert_eq!(
        app.secrets[1].container_path(FileKind::Secret),
        "/run/secrets/e"
    );
    assert_eq!(app.configs[0].container_path(FileKind::Config), "/conf");
    let spec = container_spec(&p, app, 1).expect("translates");
    let mounts = spec
        .body
        .host_config
        .and_then(|h| h.mounts)
        .unwrap_or_default();
    let bind = mounts
        .iter()
        .find(|m| m.target.as_deref() == Some("/run/secrets/token"))
        .expect("the file secret is a bind mount");
    assert_eq!(bind.read_only, Some(true));
    assert!(bind
        .source
        .as_deref()
        .is_some_and(|s| s.ends_with("/token.txt")));
    let files: Vec<(&str, u32)> = spec
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.mode))
        .collect();
    assert_eq!(files, [("/run/secrets/e", 0o400), ("/conf", 0o444)]);
    // Neither the model's JSON nor a debug print carries the value.
    assert!(!serde_json::to_string(&p)
        .unwrap_or_default()
        .contains("value-7"));
    assert!(!format!("{p:?} {:?}", spec.files).contains("value-7"));

    let mut external = p.clone();
    if let Some(s) = external.secrets.get_mut("env") {
        s.external = true;
    }
    let e = container_spec(&external, &external.services["app"], 1)
        .expect_err("an external secret without Swarm");
    assert!(e.to_string().contains("secret \"env\" is external"), "{e}");
}

#[test]
fn bad_values_name_file_line_column_and_field() {
    let dir = TempDir::new("muster-resources-bad");
    for (line, want) in [
        (
            "mem_limit: lots",
            "compose.yaml:4:16: services.app.mem_limit: invalid size \"lots\"",
        ),
        (
            "mem_swappiness: 150",
            "compose.yaml:4:21: services.app.mem_swappiness: 150 is not within 0..=100",
        ),
        (
            "oom_score_adj: 5000",
            "compose.yaml:4:20: services.app.oom_score_adj: 5000 is not within -1000..=1000",
        ),
        (
            "devices: [\"/dev/null:/dev/x:rwz\"]",
            "compose.yaml:4:15: services.app.devices[0]: invalid device",
        ),
        (
            "secrets: [{source: s, mode: \"0999\"}]",
            "services.app.secrets[0].mode: invalid file mode \"0999\"",
        ),
    ] {
        let text = format!(
            "services:\n  app:\n    image: app:1\n    {line}\nsecrets:\n  s: {{environment: S}}\n"
        );
        let e = load(&dir, &text, &[]).expect_err(line);
        assert!(e.contains(want), "{line}: {e}");
    }
}
