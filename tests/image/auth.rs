//! Credentials as the docker CLI finds them: `auths` in config.json, a
//! credential helper on PATH; a wrong password is the registry's 401, named,
//! and no password ever appears in muster's output or logs.

use base64::Engine as _;

use crate::support::registry::{credential_helper, docker_config, image_present, Registry};
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

/// A registry behind Bearer token auth (Distribution's token flow, as Docker
/// Hub): the pull goes through the engine, which asks the token server with
/// the credentials muster hands it; `tune` asks the registry itself and must
/// answer the same challenge. Both with a password and with an
/// `identitytoken` (an OAuth2 refresh token the realm trades for a token).
#[test]
fn a_bearer_token_registry_with_a_password_and_an_identity_token() {
    const REFRESH: &str = "refresh-Tok3n-0123456789abcdef";
    let registry = Registry::start_with_token(USER, PASSWORD, REFRESH);
    let token = registry.token.as_ref().expect("the token server");
    let (image, _guard) = pushed(
        &registry,
        &local_name("bearer"),
        "private/bearer:1",
        1 << 20,
        1,
    );
    let stack = Stack::new("pullbearer", &[("app", &image, "")]);
    let repo_scope = "repository:private/bearer:pull";
    let run = |config: &str, args: &[&str]| {
        let config = docker_config(config);
        let mut m = Muster::new();
        m.env("DOCKER_CONFIG", config.path());
        let out = stack.muster(m, args);
        let all = text(&out);
        for secret in [PASSWORD, REFRESH] {
            assert!(!all.contains(secret), "a credential leaked: {all}");
        }
        (out, all)
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let with_password = format!(
        r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#,
        registry.host()
    );
    let with_identity = format!(
        r#"{{"auths":{{"{}":{{"identitytoken":"{REFRESH}"}}}}}}"#,
        registry.host()
    );

    // tune, with the password: a Basic GET at the realm for a pull scope,
    // then the manifest with the token.
    let before = token.asked().len();
    let (out, all) = run(&with_password, &["--log", "debug", "tune", "--json"]);
    assert!(out.status.success(), "{all}");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    let facts = &json["services"][0]["grace"]["image"];
    assert_eq!(facts["compressed"], true, "{all}");
    assert!(facts["size"].as_u64().unwrap_or(0) >= 1 << 20, "{all}");
    let asked = token.asked()[before..].to_vec();
    assert!(
        asked.iter().any(|a| a.method == "GET"
            && a.grant == "basic"
            && a.granted
            && a.scopes == [repo_scope]),
        "{asked:?}"
    );

    // tune, with an identity token: traded by a refresh-token POST.
    let before = token.asked().len();
    let (out, all) = run(&with_identity, &["tune", "--json"]);
    assert!(out.status.success(), "{all}");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    assert_eq!(
        json["services"][0]["grace"]["image"]["compressed"], true,
        "{all}"
    );
    let asked = token.asked()[before..].to_vec();
    assert!(
        asked.iter().any(|a| a.method == "POST"
            && a.grant == "refresh_token"
            && a.granted
            && a.scopes == [repo_scope]),
        "{asked:?}"
    );

    // No credentials: the engine's anonymous token request is refused.
    let (out, all) = run("{}", &["pull"]);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&registry.host()) && all.contains("unauthorized"),
        "{all}"
    );

    // A wrong identity token: the token server's 401, named, for both.
    let wrong = with_identity.replace(REFRESH, "not-the-refresh-token");
    let (out, all) = run(&wrong, &["tune"]);
    assert!(
        out.status.success(),
        "tune falls back to declared values: {all}"
    );
    assert!(
        all.contains(&registry.host()) && all.contains("401"),
        "{all}"
    );
    let (out, all) = run(&wrong, &["pull"]);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&registry.host()) && all.contains("unauthorized"),
        "{all}"
    );

    // The pull through the engine, with the identity token, then with the
    // password: both end with the image on the engine.
    let (out, all) = run(&with_identity, &["--log", "debug", "pull"]);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("1 pulled"), "{all}");
    assert!(image_present(&image));
    let removed = std::process::Command::new("docker")
        .args(["rmi", &image])
        .output()
        .expect("docker rmi");
    assert!(removed.status.success(), "{removed:?}");
    let (out, all) = run(&with_password, &["pull", "--json"]);
    assert!(out.status.success(), "{all}");
    assert!(image_present(&image));
}
