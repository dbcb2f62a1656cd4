//! `muster tune` for a service whose image is not on the engine: the size
//! comes from the registry's manifest (the compressed layer sizes), with the
//! pull's credentials, and the output says it is the compressed registry
//! size. The expected size is read from the registry's own storage.

use std::path::Path;

use base64::Engine as _;

use crate::support::registry::{docker_config, image_present, Registry};
use crate::support::{text, Muster};
use crate::{local_name, pushed, Stack};

const USER: &str = "tuner";
const PASSWORD: &str = "Tune-pa55-word-xyz";

/// Sizes of the blobs the registry linked to `repo` (layers and config),
/// by digest, read from its filesystem storage.
fn stored_blobs(registry: &Registry, repo: &str) -> Vec<(String, u64)> {
    let v2 = registry.dir.path().join("storage/docker/registry/v2");
    let layers = v2.join("repositories").join(repo).join("_layers/sha256");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&layers).expect("the repository's _layers") {
        let hex = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        let data = v2
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(&hex)
            .join("data");
        let size = std::fs::metadata(Path::new(&data))
            .expect("blob data")
            .len();
        out.push((format!("sha256:{hex}"), size));
    }
    out
}

/// `muster tune ARGS…` with `DOCKER_CONFIG=config` (exit 0 asserted):
/// its stdout and its whole output.
fn tune(stack: &Stack, config: &Path, args: &[&str]) -> (Vec<u8>, String) {
    let mut m = Muster::new();
    m.env("DOCKER_CONFIG", config);
    let mut all_args = vec!["tune"];
    all_args.extend_from_slice(args);
    let out = stack.muster(m, &all_args);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    (out.stdout, all)
}

#[test]
fn tune_reads_a_missing_images_size_from_the_registry() {
    let mut registry = Registry::start_with_auth(USER, PASSWORD);
    let (image, _guard) = pushed(&registry, &local_name("tune"), "muster/tune:1", 6 << 20, 2);
    let stack = Stack::new("pulltune", &[("app", &image, "")]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = docker_config(&format!(
        r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#,
        registry.host()
    ));

    let (stdout, all) = tune(&stack, config.path(), &["--json"]);
    let json: serde_json::Value =
        serde_json::from_slice(&stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    let facts = &json["services"][0]["grace"]["image"];
    assert_eq!(facts["compressed"], true, "{all}");
    assert_eq!(facts["reference"], image.as_str(), "{all}");
    // The layers are every linked blob but the config (the image ID).
    let blobs = stored_blobs(&registry, "muster/tune");
    let id = facts["id"].as_str().expect("the config digest");
    assert!(blobs.iter().any(|(d, _)| d == id), "{id} not in {blobs:?}");
    let expected: u64 = blobs.iter().filter(|(d, _)| d != id).map(|(_, s)| s).sum();
    assert_eq!(facts["size"].as_u64(), Some(expected), "{all}");
    assert!(expected >= 6 << 20);
    assert!(!image_present(&image), "tune must not pull");

    // The table says where the size came from.
    let (_, all) = tune(&stack, config.path(), &[]);
    assert!(
        all.contains("compressed size from the registry manifest: not pulled yet"),
        "{all}"
    );

    // Without credentials: the registry's 401, named, and the declared values.
    let empty = docker_config("{}");
    let (_, all) = tune(&stack, empty.path(), &[]);
    assert!(
        all.contains(&registry.host()) && all.contains("401"),
        "{all}"
    );
    for secret in [PASSWORD, b64.as_str()] {
        assert!(!all.contains(secret), "a credential leaked: {all}");
    }

    // The registry down: its address and the connection error, named.
    let host = registry.host();
    registry.kill();
    let (_, all) = tune(&stack, config.path(), &[]);
    assert!(
        all.contains(&format!("connect to {host}")) && all.contains("refused"),
        "{all}"
    );
    assert!(all.contains("declared values used"), "{all}");
}

/// `docker --config DIR ARGS…`, asserting success.
fn docker_cli(config: &Path, args: &[&str]) {
    let out = std::process::Command::new("docker")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tune_picks_the_host_platform_from_a_manifest_list() {
    let registry = Registry::start();
    let (amd, _a) = pushed(
        &registry,
        &local_name("tune-amd"),
        "muster/list-amd:1",
        6 << 20,
        2,
    );
    let (arm, _b) = pushed(
        &registry,
        &local_name("tune-arm"),
        "muster/list-arm:1",
        2 << 20,
        1,
    );
    // A list whose second entry is annotated with another architecture than
    // the host's (docker's manifest commands, with a config dir of their own).
    let other = match muster::engine::registry::host_platform().1 {
        "amd64" => "arm64",
        _ => "amd64",
    };
    let list = registry.image("muster/list:1");
    let cli = crate::support::TempDir::new("muster-manifest-cli");
    docker_cli(
        cli.path(),
        &["manifest", "create", "--insecure", &list, &amd, &arm],
    );
    docker_cli(
        cli.path(),
        &[
            "manifest", "annotate", "--os", "linux", "--arch", other, &list, &arm,
        ],
    );
    docker_cli(cli.path(), &["manifest", "push", "--insecure", &list]);
    let stack = Stack::new("pulltunelist", &[("app", &list, "")]);

    let out = stack.muster(Muster::new(), &["tune", "--json"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    let facts = &json["services"][0]["grace"]["image"];
    assert_eq!(facts["compressed"], true, "{all}");
    let id = facts["id"].as_str().expect("the config digest");
    let blobs = stored_blobs(&registry, "muster/list-amd");
    assert!(
        blobs.iter().any(|(d, _)| d == id),
        "{id}: not the amd64 entry's config"
    );
    let expected: u64 = blobs.iter().filter(|(d, _)| d != id).map(|(_, s)| s).sum();
    assert_eq!(facts["size"].as_u64(), Some(expected), "{all}");
}
