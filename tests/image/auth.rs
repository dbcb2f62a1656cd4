//! Credentials as the docker CLI finds them: `auths` in config.json, a
//! credential helper on PATH; a wrong password is the registry's 401, named,
//! and no password ever appears in muster's output or logs.

use base64::Engine as _;

use crate::support::registry::{credential_helper, docker_config, Registry};
use crate::support::{text, Muster};
use crate::{local_name, pushed, Stack};

const USER: &str = "muster";
const PASSWORD: &str = "s3cret-Pa55word-xyz";

#[test]
fn config_json_auths_and_a_wrong_password() {
    let registry = Registry::start_with_auth(USER, PASSWORD);
    let (image, _guard) = pushed(&registry, &local_name("auths"), "private/app:1", 1 << 20, 1);
    let stack = Stack::new("pullauths", &[("app", &image, "")]);

    // No credentials: the registry's 401, naming registry and image.
    let out = stack.muster(Muster::new(), &["pull"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("401 unauthorized") && all.contains(&registry.host()),
        "{all}"
    );

    // A wrong password: 401 as well, and neither password anywhere.
    let wrong = "Wr0ng-pa55-abc";
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{wrong}"));
    let config = docker_config(&format!(
        r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#,
        registry.host()
    ));
    let mut m = Muster::new();
    m.env("DOCKER_CONFIG", config.path());
    let out = stack.muster(m, &["--log", "debug", "pull", "--json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("unauthorized") && all.contains(&registry.host()),
        "{all}"
    );
    for secret in [wrong, PASSWORD, b64.as_str()] {
        assert!(!all.contains(secret), "a credential leaked: {all}");
    }

    // The right one in `auths` (username/password form): pulled.
    let config = docker_config(&format!(
        r#"{{"auths":{{"http://{}":{{"username":"{USER}","password":"{PASSWORD}"}}}}}}"#,
        registry.host()
    ));
    let mut m = Muster::new();
    m.env("DOCKER_CONFIG", config.path());
    let out = stack.muster(m, &["--log", "debug", "up"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(PASSWORD), "the password leaked: {all}");
}

#[test]
fn a_credential_helper_on_path() {
    let registry = Registry::start_with_auth(USER, PASSWORD);
    let (image, _guard) = pushed(
        &registry,
        &local_name("helper"),
        "private/helped:1",
        1 << 20,
        1,
    );
    let stack = Stack::new("pullhelper", &[("app", &image, "")]);
    let helper = format!("mt{}", std::process::id());
    let (bin, asked) = credential_helper(&helper, USER, PASSWORD);
    let config = docker_config(&format!(
        r#"{{"credHelpers":{{"{}":"{helper}"}}}}"#,
        registry.host()
    ));
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut m = Muster::new();
    m.env("DOCKER_CONFIG", config.path()).env("PATH", path);
    let out = stack.muster(m, &["--log", "debug", "pull"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("1 pulled"), "{all}");
    assert!(!all.contains(PASSWORD), "the password leaked: {all}");
    assert_eq!(
        std::fs::read_to_string(&asked).expect("the helper was asked"),
        registry.host()
    );
}
