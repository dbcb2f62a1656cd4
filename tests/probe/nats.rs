//! NATS probes against real nats-server processes on loopback: JetStream,
//! streams, restarts, token/user/nkey/creds authentication, unreachable hosts.

use std::path::Path;
use std::time::Duration;

use crate::support::{NatsServer, TempDir};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use muster::compose::xmuster::ProbeSpec;
use muster::probe::{build, Probe, ProbeContext, ProbeOutcome, ProbeStatus};
use muster::supervisor::once::run_once;
use nkeys::KeyPair;
use serde_json::json;

fn probe(yaml: &str) -> Box<dyn Probe> {
    let spec: ProbeSpec = serde_saphyr::from_str(yaml).expect("probe spec parses");
    build(&spec, &ProbeContext::for_service("nats")).expect("probe builds")
}

async fn check(p: &mut Box<dyn Probe>) -> ProbeOutcome {
    run_once(p.as_mut(), Duration::from_secs(3)).await
}

fn assert_auth_failed(outcome: &ProbeOutcome) {
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(
        outcome.reason.starts_with("auth failed"),
        "{}",
        outcome.reason
    );
}

#[tokio::test]
async fn nats_ok_with_jetstream_and_a_stream() {
    let server = NatsServer::start(true);
    let mut p = probe(&format!(
        "nats: {{ url: \"{}\", jetstream: true }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut p).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(
        outcome.reason.contains("JetStream ok"),
        "{}",
        outcome.reason
    );

    let mut stream = probe(&format!(
        "nats: {{ url: \"{}\", stream: ORDERS }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut stream).await;
    assert_eq!(outcome.status, ProbeStatus::Fail);
    assert!(
        outcome.reason.contains("stream \"ORDERS\" does not exist"),
        "{}",
        outcome.reason
    );
    let client = async_nats::connect(server.url()).await.unwrap();
    let created = client
        .request(
            "$JS.API.STREAM.CREATE.ORDERS",
            r#"{"name":"ORDERS","subjects":["orders.>"]}"#.into(),
        )
        .await
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&created.payload).unwrap();
    assert!(created.get("error").is_none(), "{created}");
    let outcome = check(&mut stream).await;
    assert!(
        outcome.is_ok() && outcome.reason.contains("stream ORDERS exists"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn nats_fails_when_jetstream_is_required_but_off() {
    let server = NatsServer::start(false);
    let mut plain = probe(&format!("nats: {{ url: \"{}\" }}\n", server.url()));
    let outcome = check(&mut plain).await;
    assert!(
        outcome.is_ok() && outcome.reason.contains("flush ok"),
        "{outcome:?}"
    );
    let mut js = probe(&format!(
        "nats: {{ url: \"{}\", jetstream: true }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut js).await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(
        outcome.reason.contains("JetStream is not enabled"),
        "{}",
        outcome.reason
    );
}

#[tokio::test]
async fn nats_recovers_after_a_server_restart() {
    let mut server = NatsServer::start(true);
    let mut p = probe(&format!(
        "nats: {{ url: \"{}\", jetstream: true }}\ntimeout: 1s\n",
        server.url()
    ));
    assert!(check(&mut p).await.is_ok());
    let mut monitor = probe(&format!(
        "nats: {{ monitor_url: \"{}\" }}\ntimeout: 1s\n",
        server.monitor_url()
    ));
    let outcome = check(&mut monitor).await;
    assert!(
        outcome.is_ok() && outcome.reason.contains("healthz ok"),
        "{outcome:?}"
    );
    server.kill();
    let down = check(&mut p).await;
    assert_ne!(down.status, ProbeStatus::Ok, "{down:?}");
    let down = check(&mut p).await;
    assert!(down.reason.contains("refused"), "{}", down.reason);
    let down = check(&mut monitor).await;
    assert!(down.reason.contains("refused"), "{}", down.reason);
    server.restart();
    let mut up = check(&mut p).await;
    for _ in 0..20 {
        if up.is_ok() {
            break;
        }
        // JetStream may need a moment after the port opens.
        tokio::time::sleep(Duration::from_millis(100)).await;
        up = check(&mut p).await;
    }
    assert!(up.is_ok(), "{up:?}");
    let outcome = check(&mut monitor).await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn nats_auth_failures_have_an_auth_reason() {
    let server = NatsServer::start_with(false, &["--auth", "t0ken"]);
    let mut wrong = probe(&format!(
        "nats: {{ url: \"nats://wrong@127.0.0.1:{}\" }}\ntimeout: 2s\n",
        server.port
    ));
    assert!(!wrong.target().contains("wrong"), "{}", wrong.target());
    let outcome = check(&mut wrong).await;
    assert_auth_failed(&outcome);
    let mut right = probe(&format!(
        "nats: {{ url: \"nats://t0ken@127.0.0.1:{}\" }}\n",
        server.port
    ));
    let outcome = check(&mut right).await;
    assert!(outcome.is_ok(), "{outcome:?}");

    let users = NatsServer::start_with(false, &["--user", "app", "--pass", "pw"]);
    let mut wrong = probe(&format!(
        "nats: {{ url: \"nats://app:nope@127.0.0.1:{}\" }}\ntimeout: 2s\n",
        users.port
    ));
    let outcome = check(&mut wrong).await;
    assert_auth_failed(&outcome);
    let mut right = probe(&format!(
        "nats: {{ url: \"nats://app:pw@127.0.0.1:{}\" }}\n",
        users.port
    ));
    let outcome = check(&mut right).await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn unreachable_nats_gives_a_clear_reason() {
    let mut dns = probe("nats: { url: \"nats://no-such-host.invalid:4222\" }\ntimeout: 1s\n");
    let outcome = check(&mut dns).await;
    assert_ne!(outcome.status, ProbeStatus::Ok);
    assert!(
        outcome.reason.contains("DNS") || outcome.reason.contains("resolve"),
        "{}",
        outcome.reason
    );
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut hang = probe(&format!(
        "nats: {{ url: \"nats://127.0.0.1:{port}\" }}\ntimeout: 500ms\n"
    ));
    let start = std::time::Instant::now();
    let outcome = run_once(hang.as_mut(), Duration::from_millis(500)).await;
    assert_eq!(outcome.status, ProbeStatus::Timeout, "{outcome:?}");
    // Ended by its timeout, not hung on the silent server.
    assert!(start.elapsed() < crate::support::HANG_GUARD);
}

#[test]
fn nats_spec_needs_a_url() {
    let spec: ProbeSpec = serde_saphyr::from_str("nats: { jetstream: true }\n").unwrap();
    let err = build(&spec, &ProbeContext::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nats probe") && err.contains("url"), "{err}");
}

// nkey and creds-file (JWT) authentication, against nats-server processes
// configured for each scheme. The keys and JWTs are made here with the
// `nkeys` crate (the one async-nats signs with); the JWTs are the v2 claims
// nats-server checks: a self-signed operator, an account it signs (preloaded
// into a memory resolver) and a user the account signs.

fn write(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write test file");
    path.to_string_lossy().into_owned()
}

fn server_with_config(config: &str) -> (NatsServer, TempDir) {
    let dir = TempDir::new("muster-nats-auth");
    let path = write(&dir, "server.conf", config);
    (NatsServer::start_with(false, &["-c", &path]), dir)
}

/// A NATS v2 JWT: `claims` signed by `issuer`, about `subject`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let header = json!({ "typ": "JWT", "alg": "ed25519-nkey" });
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = json!({
        "jti": format!("muster-test-{subject}"),
        "iat": issued_at,
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = issuer.sign(signing_input.as_bytes()).expect("sign JWT");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn creds_file(user_jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[tokio::test]
async fn nats_nkey_authenticates_and_a_wrong_key_is_an_auth_failure() {
    let user = KeyPair::new_user();
    let (server, _dir) = server_with_config(&format!(
        "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
        user.public_key()
    ));
    let seed = user.seed().expect("user seed");
    let mut right = probe(&format!(
        "nats: {{ url: \"{}\", nkey: \"{seed}\" }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut right).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    // The seed is a secret: it is never part of what status shows.
    assert!(!right.target().contains(&seed), "{}", right.target());

    let stranger = KeyPair::new_user().seed().expect("seed");
    let mut wrong = probe(&format!(
        "nats: {{ url: \"{}\", nkey: \"{stranger}\" }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut wrong).await;
    assert_auth_failed(&outcome);

    let mut none = probe(&format!(
        "nats: {{ url: \"{}\" }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut none).await;
    assert_auth_failed(&outcome);
}

#[tokio::test]
async fn nats_creds_file_authenticates_against_an_operator_setup() {
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let user = KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "muster-test-operator",
        json!({ "type": "operator", "version": 2 }),
    );
    let unlimited = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1
    });
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "muster-test-account",
        json!({ "limits": unlimited, "type": "account", "version": 2 }),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "muster-test-user",
        json!({
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2
        }),
    );
    let (server, dir) = server_with_config(&format!(
        "operator: \"{operator_jwt}\"\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{account_jwt}\"\n}}\n",
        account.public_key()
    ));
    let creds = write(
        &dir,
        "user.creds",
        &creds_file(&user_jwt, &user.seed().expect("user seed")),
    );
    let mut right = probe(&format!(
        "nats: {{ url: \"{}\", creds: \"{creds}\" }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut right).await;
    assert!(outcome.is_ok(), "{outcome:?}");

    // A user the server's account did not sign.
    let rogue_account = KeyPair::new_account();
    let rogue = KeyPair::new_user();
    let rogue_jwt = jwt(
        &rogue_account,
        &rogue.public_key(),
        "rogue",
        json!({ "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2 }),
    );
    let rogue_creds = write(
        &dir,
        "rogue.creds",
        &creds_file(&rogue_jwt, &rogue.seed().expect("seed")),
    );
    let mut wrong = probe(&format!(
        "nats: {{ url: \"{}\", creds: \"{rogue_creds}\" }}\ntimeout: 2s\n",
        server.url()
    ));
    let outcome = check(&mut wrong).await;
    assert_auth_failed(&outcome);

    // A creds file that is not there is a failure that names it.
    let missing = dir.path().join("missing.creds");
    let mut absent = probe(&format!(
        "nats: {{ url: \"{}\", creds: \"{}\" }}\ntimeout: 2s\n",
        server.url(),
        missing.display()
    ));
    let outcome = check(&mut absent).await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(
        outcome.reason.contains("missing.creds"),
        "{}",
        outcome.reason
    );
    assert!(Path::new(&creds).exists());
}
