//! The `build:` key as the compose model reads it (no engine needed): every
//! key of the long form, the short form, list and mapping shapes, the image
//! name Compose gives a built service, warnings for what the engine's build
//! API cannot apply, and errors that name file, line, column and field.

use muster::compose::{self, LoadOptions};

use crate::support::TempDir;

fn load(yaml: &str, env: &[(&str, &str)]) -> Result<(compose::Project, Vec<String>), String> {
    let dir = TempDir::new("muster-build-model");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, yaml).expect("write compose.yaml");
    let options = LoadOptions {
        files: vec![file],
        environment: Some(crate::support::compose::env(env)),
        working_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    compose::load_with_warnings(&options)
        .map(|(p, w)| (p, w.into_iter().map(|w| w.message).collect()))
        .map_err(|e| e.to_string())
}

#[test]
fn every_key_of_the_long_form_is_read() {
    let (p, warnings) = load(
        r#"name: shop
services:
  api:
    build:
      context: ./api
      dockerfile: docker/Dockerfile.prod
      args:
        - VERSION=${TAG:-dev}
        - FROM_ENV
      target: runtime
      labels: { team: agents }
      tags: ["registry.local/api:1"]
      cache_from: ["api:cache"]
      network: host
      extra_hosts: { db: 10.0.0.5 }
      shm_size: 256m
      no_cache: true
      pull: true
      platforms: [linux/amd64]
      secrets: [token]
  worker:
    image: shop/worker:2
    build:
      context: ./worker
      extra_hosts: ["cache=10.0.0.6", "search:10.0.0.7"]
      dockerfile_inline: |
        FROM scratch
  short:
    build: ./short
secrets:
  token:
    environment: TAG
"#,
        &[("TAG", "1.4"), ("FROM_ENV", "yes")],
    )
    .expect("loads");
    let api = &p.services["api"];
    let b = api.build.as_ref().expect("build");
    assert!(
        b.context.ends_with("/api"),
        "absolute context: {}",
        b.context
    );
    assert_eq!(b.dockerfile.as_deref(), Some("docker/Dockerfile.prod"));
    assert_eq!(b.args["VERSION"].as_deref(), Some("1.4"));
    assert_eq!(b.args["FROM_ENV"].as_deref(), Some("yes"));
    assert_eq!(b.target.as_deref(), Some("runtime"));
    assert_eq!(b.labels["team"], "agents");
    assert_eq!(b.tags, vec!["registry.local/api:1"]);
    assert_eq!(b.cache_from, vec!["api:cache"]);
    assert_eq!(b.network.as_deref(), Some("host"));
    assert_eq!(b.extra_hosts, vec!["db:10.0.0.5"]);
    assert_eq!(b.shm_size, Some(256 * 1024 * 1024));
    assert!(b.no_cache && b.pull);
    assert_eq!(b.platforms, vec!["linux/amd64"]);
    assert_eq!(b.unapplied, vec!["secrets"]);
    assert_eq!(
        api.image.as_deref(),
        Some("shop-api"),
        "Compose's <project>-<service>"
    );
    assert!(b.local_image);

    let worker = &p.services["worker"];
    let w = worker.build.as_ref().expect("build");
    assert_eq!(worker.image.as_deref(), Some("shop/worker:2"));
    assert!(!w.local_image);
    assert_eq!(w.extra_hosts, vec!["cache:10.0.0.6", "search:10.0.0.7"]);
    assert_eq!(w.dockerfile_inline.as_deref(), Some("FROM scratch\n"));

    let short = &p.services["short"];
    assert!(short
        .build
        .as_ref()
        .expect("build")
        .context
        .ends_with("/short"));
    assert_eq!(short.image.as_deref(), Some("shop-short"));

    assert!(
        warnings
            .iter()
            .any(|w| w.contains(":20:7: `services.api.build.secrets` is not applied")),
        "{warnings:?}"
    );
}

/// compose-go `loader/validate.go` checks a build secret against the
/// top-level `secrets:` as it checks a service's: an undeclared one is refused
/// with the file, line, column and the field.
#[test]
fn an_undeclared_build_secret_is_refused() {
    let e = load(
        "services:\n  api:\n    build:\n      context: .\n      secrets: [token]\n",
        &[],
    )
    .expect_err("undeclared build secret");
    assert!(
        e.contains("compose.yaml:5:17: services.api.build.secrets: the service refers to undefined secret \"token\"")
            && e.contains("the file declares no top-level `secrets:`"),
        "{e}"
    );
    let (p, _) = load(
        "services:\n  api:\n    build:\n      context: .\n      secrets: [{source: token}]\n\
         secrets:\n  token:\n    file: ./token.txt\n",
        &[],
    )
    .expect("a declared build secret loads");
    assert_eq!(
        p.services["api"]
            .build
            .as_ref()
            .map(|b| b.unapplied.clone()),
        Some(vec!["secrets".to_string()])
    );
}

#[test]
fn bad_build_values_name_file_line_column_and_field() {
    let e = load(
        "name: shop\nservices:\n  api:\n    build:\n      context: .\n      shm_size: lots\n",
        &[],
    )
    .unwrap_err();
    assert!(
        e.ends_with("compose.yaml:6:17: services.api.build.shm_size: expected a size such as \"256m\" or a number of bytes, found \"lots\""),
        "{e}"
    );
    let e = load(
        "name: shop\nservices:\n  api:\n    build:\n      dockerfile: Dockerfile\n      dockerfile_inline: FROM scratch\n",
        &[],
    )
    .unwrap_err();
    assert!(
        e.contains("compose.yaml:6:26: services.api.build.dockerfile_inline: dockerfile and dockerfile_inline are mutually exclusive"),
        "{e}"
    );
    let e = load(
        "name: shop\nservices:\n  api:\n    build:\n      extra_hosts: [nohost]\n",
        &[],
    )
    .unwrap_err();
    assert!(
        e.contains(
            "compose.yaml:5:21: services.api.build.extra_hosts[0]: expected host:ip or host=ip"
        ),
        "{e}"
    );
    let e = load("name: shop\nservices:\n  api:\n    build: [a]\n", &[]).unwrap_err();
    assert!(
        e.contains("compose.yaml:4:12: services.api.build: expected a context path or a mapping"),
        "{e}"
    );
}
