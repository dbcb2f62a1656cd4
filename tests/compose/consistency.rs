//! compose-go's consistency checks (loader/validate.go checkConsistency):
//! each refusal with file:line:col and field, and the near miss Compose
//! accepts beside it.

use std::path::Path;

use crate::support::compose::{load_dir, write_file};
use crate::support::TempDir;
use muster::compose::Project;

fn load(dir: &Path, text: &str) -> Result<Project, String> {
    write_file(dir, "compose.yaml", text);
    load_dir(dir, &["compose.yaml"], &[], Some("consistency"))
        .map_err(|e| e.to_string().replace(&format!("{}/", dir.display()), ""))
}

fn refused(dir: &Path, text: &str) -> String {
    match load(dir, text) {
        Ok(_) => panic!("Compose refuses this, muster accepted it:\n{text}"),
        Err(e) => e,
    }
}

fn accepted(dir: &Path, text: &str) -> Project {
    load(dir, text).unwrap_or_else(|e| panic!("Compose accepts this, muster refused: {e}\n{text}"))
}

#[test]
fn undefined_network_is_refused_default_and_declared_ones_are_not() {
    // validate.go: "service %q refers to undefined network %s".
    let dir = TempDir::new("muster-consistency-net");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    image: img\n    networks:\n      - front\n      - back\nnetworks:\n  front: {}\n",
    );
    assert!(e.starts_with("compose.yaml:6:9: services.web.networks.back: the service refers to undefined network \"back\""), "{e}");
    assert!(e.contains("declared: front"), "{e}");
    accepted(
        &dir.0,
        "services:\n  web:\n    image: img\n    networks: [default, front]\nnetworks:\n  front:\n    external: true\n",
    );
}

#[test]
fn network_mode_with_networks_is_refused() {
    // validate.go: "declares mutually exclusive `network_mode` and `networks`".
    let dir = TempDir::new("muster-consistency-mode");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    image: img\n    network_mode: host\n    networks: [front]\nnetworks:\n  front: {}\n",
    );
    assert!(e.starts_with("compose.yaml:4:19: services.web.network_mode: network_mode \"host\" and networks are mutually exclusive"), "{e}");
    accepted(
        &dir.0,
        "services:\n  web:\n    image: img\n    network_mode: host\n",
    );
}

#[test]
fn undefined_named_volume_is_refused_binds_and_anonymous_ones_are_not() {
    // validate.go: "service %q refers to undefined volume %s" (non-anonymous
    // volumes only).
    let dir = TempDir::new("muster-consistency-vol");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    image: img\n    volumes:\n      - /anon\n      - data:/data\n",
    );
    assert!(e.starts_with("compose.yaml:6:9: services.web.volumes[1]: the service refers to undefined volume \"data\""), "{e}");
    assert!(
        e.contains("./data") && e.contains("declares no top-level `volumes:`"),
        "{e}"
    );
    accepted(
        &dir.0,
        "services:\n  web:\n    image: img\n    volumes:\n      - /anon\n      - ./data:/bind\n      - data:/data\nvolumes:\n  data:\n",
    );
}

#[test]
fn container_name_with_replicas_is_refused() {
    // validate.go: "can't set container_name and deploy.replicas|scale as
    // container name must be unique".
    let dir = TempDir::new("muster-consistency-cname");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    image: img\n    container_name: web\n    deploy:\n      replicas: 2\n",
    );
    assert!(e.starts_with("compose.yaml:4:21: services.web.container_name: container_name \"web\" with deploy.replicas 2"), "{e}");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    image: img\n    container_name: web\n    scale: 3\n",
    );
    assert!(e.contains("with scale 3"), "{e}");
    accepted(
        &dir.0,
        "services:\n  web:\n    image: img\n    container_name: web\n    scale: 1\n",
    );
}

#[test]
fn undefined_secret_and_config_and_a_secret_without_source_are_refused() {
    // validate.go: "refers to undefined secret|config", "secret %q must
    // declare either `file` or `environment`".
    let dir = TempDir::new("muster-consistency-secret");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    image: img\n    secrets:\n      - source: token\n        target: /run/t\n",
    );
    assert!(e.starts_with("compose.yaml:5:9: services.web.secrets: the service refers to undefined secret \"token\""), "{e}");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    image: img\n    configs: [nginx]\n",
    );
    assert!(e.starts_with("compose.yaml:4:15: services.web.configs: the service refers to undefined config \"nginx\""), "{e}");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    image: img\nsecrets:\n  token:\n    labels: {a: b}\n",
    );
    assert!(
        e.starts_with(
            "compose.yaml:5:3: secrets.token: a secret must declare either `file` or `environment`"
        ),
        "{e}"
    );
    accepted(
        &dir.0,
        "services:\n  web:\n    image: img\n    secrets: [token, ext]\n    configs: [nginx]\nsecrets:\n  token:\n    environment: TOKEN\n  ext:\n    external: true\nconfigs:\n  nginx:\n    content: x\n",
    );
}

#[test]
fn a_target_mounted_twice_is_refused() {
    // validate.go: "%s: target %s already mounted as %s" (tmpfs, then volumes).
    let dir = TempDir::new("muster-consistency-target");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    image: img\n    tmpfs: [/run:size=1m]\n    volumes:\n      - ./run:/run\n",
    );
    assert!(e.starts_with("compose.yaml:6:9: services.web.volumes[0]: target /run is already mounted by services.web.tmpfs[0]"), "{e}");
    accepted(
        &dir.0,
        "services:\n  web:\n    image: img\n    tmpfs: [/tmp]\n    volumes:\n      - ./run:/run\n",
    );
}

#[test]
fn build_platforms_must_include_the_platform() {
    // validate.go: "service.build.platforms MUST include service.platform".
    let dir = TempDir::new("muster-consistency-platform");
    let e = refused(
        &dir.0,
        "services:\n  web:\n    platform: linux/arm64\n    build:\n      context: .\n      platforms: [linux/amd64]\n",
    );
    assert!(e.starts_with("compose.yaml:6:18: services.web.build.platforms: build.platforms (linux/amd64) must include the service's platform \"linux/arm64\""), "{e}");
    accepted(
        &dir.0,
        "services:\n  web:\n    platform: linux/amd64\n    build:\n      context: .\n      platforms: [linux/amd64, linux/arm64]\n",
    );
}
