//! `build.ssh`, `build.additional_contexts` and `build.secrets` (BuildKit-only
//! keys muster's classic builder cannot apply) are still read into the model
//! and printed by `config --json` as compose-go's BuildConfig marshals them:
//! `ssh` as `id` / `id=path` strings, local contexts made absolute, secrets in
//! the ServiceSecretConfig shape; a context without a value is refused.

use std::path::Path;

use crate::support::compose::{load_dir, write_file};
use crate::support::TempDir;
use muster::compose::{hash, Project};

fn load(dir: &Path, text: &str) -> Result<Project, String> {
    write_file(dir, "compose.yaml", text);
    load_dir(dir, &["compose.yaml"], &[], Some("bk")).map_err(|e| e.to_string())
}

#[test]
fn buildkit_only_keys_are_printed_as_compose_go_does() {
    let dir = TempDir::new("muster-build-keys");
    let p = load(
        dir.path(),
        "services:\n  app:\n    build:\n      context: .\n\
         \x20     ssh: {default: ~, deploy: ./key}\n\
         \x20     additional_contexts: [libs=./libs, base=docker-image://alpine:3, app=service:app2]\n\
         \x20     secrets: [tok]\n\
         \x20 app2:\n    image: a:1\nsecrets:\n  tok:\n    file: ./tok\n",
    )
    .expect("loads");
    let full = hash::service_shape(&p.services["app"], true).to_go_string();
    let d = dir.path().display();
    let want = format!(
        r#""ssh":["default","deploy=./key"],"additional_contexts":{{"app":"service:app2","base":"docker-image://alpine:3","libs":"{d}/libs"}}"#
    );
    assert!(full.contains(&want), "{full}");
    assert!(full.contains(r#""secrets":[{"source":"tok"}]"#), "{full}");
    let e = load(
        dir.path(),
        "services:\n  app:\n    build:\n      context: .\n      additional_contexts:\n        libs:\n",
    )
    .expect_err("a context without a value");
    assert!(
        e.contains("compose.yaml:6:") && e.contains("services.app.build.additional_contexts.libs"),
        "{e}"
    );
}
