//! TLS probes against real servers on loopback, with a CA the test makes
//! (openssl CLI): `https://` against `openssl s_server -www`, `rediss://`
//! against a redis-server listening with TLS only, `tls://` against a
//! nats-server with `--tls`. Trusted through `ca_file`
//! the probes pass; without it the failure says why; a CA file that is
//! missing, empty or given for a plain URL is a config error naming `ca_file`.
//! Servers that require a client certificate (mutual TLS) pass with the
//! probe's `cert_file`/`key_file` and refuse it without them.

use crate::support::{self, certs::make_certificates, KillOnDrop, Muster, TempDir};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use muster::compose::xmuster::ProbeSpec;
use muster::probe::{build, ProbeContext, ProbeStatus};
use muster::supervisor::once::run_once;

/// `openssl s_server -www` on 127.0.0.1:`port`: answers any GET with
/// `HTTP/1.0 200 ok` and a status page.
fn start_tls_server(dir: &Path, port: u16) -> KillOnDrop {
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", "server.pem", "-key", "server.key"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    support::wait_for_port(port, Duration::from_secs(10));
    KillOnDrop(child)
}

/// A redis-server listening with TLS only on `port`; with `auth_clients`
/// it asks every client for a certificate (Redis's own default).
fn redis_tls_server(dir: &Path, port: u16, auth_clients: bool) -> KillOnDrop {
    let child = Command::new("redis-server")
        .args(["--port", "0", "--bind", "127.0.0.1", "--save", ""])
        .args(["--tls-port", &port.to_string()])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.pem"])
        .args([
            "--tls-auth-clients",
            if auth_clients { "yes" } else { "no" },
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    support::wait_for_port(port, Duration::from_secs(10));
    KillOnDrop(child)
}

/// A nats-server with `--tls` on `port`; with `verify` it requires a client
/// certificate signed by the test CA.
fn nats_tls_server(dir: &Path, port: u16, verify: bool) -> KillOnDrop {
    let mut cmd = Command::new("nats-server");
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["--tls", "--tlscert", "server.pem", "--tlskey", "server.key"]);
    if verify {
        cmd.args(["--tlsverify", "--tlscacert", "ca.pem"]);
    }
    let child = cmd
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server");
    support::wait_for_port(port, Duration::from_secs(10));
    KillOnDrop(child)
}

/// The TLS fields of a probe for the test CA, and the client certificate
/// when `with_cert`.
fn tls_fields(dir: &Path, with_cert: bool) -> String {
    let ca = format!("ca_file: \"{}\"", dir.join("ca.pem").display());
    if !with_cert {
        return ca;
    }
    format!(
        "{ca}, cert_file: \"{}\", key_file: \"{}\"",
        dir.join("client.pem").display(),
        dir.join("client.key").display()
    )
}

/// `times` runs of one probe built from `yaml` (it keeps its connection
/// between runs where the server lets it).
async fn runs(yaml: &str, times: usize) -> Vec<muster::probe::ProbeOutcome> {
    let mut probe = build(&spec(yaml), &ProbeContext::default()).expect("probe builds");
    let mut outcomes = Vec::with_capacity(times);
    for _ in 0..times {
        outcomes.push(run_once(probe.as_mut(), Duration::from_secs(3)).await);
    }
    outcomes
}

/// One run of a probe built from `yaml`.
async fn run(yaml: &str) -> muster::probe::ProbeOutcome {
    let mut outcomes = runs(yaml, 1).await;
    outcomes.remove(0)
}

fn spec(yaml: &str) -> ProbeSpec {
    serde_saphyr::from_str(yaml).expect("probe spec parses")
}

#[tokio::test]
async fn https_probe_trusts_a_ca_file_and_names_an_unknown_issuer() {
    let dir = TempDir::new("muster-https");
    make_certificates(dir.path());
    let port = support::free_port();
    let _server = start_tls_server(dir.path(), port);
    let ca = dir.path().join("ca.pem");

    // Trusted through ca_file: ok, run after run (s_server closes each
    // HTTP/1.0 connection, so every run also makes a new TLS connection).
    let trusted = format!(
        "http: {{ url: \"https://127.0.0.1:{port}/\", ca_file: \"{}\" }}\ntimeout: 3s\n",
        ca.display()
    );
    for outcome in runs(&trusted, 3).await {
        assert_eq!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
        assert_eq!(outcome.reason, "HTTP 200");
    }

    // `runs` has let go of its probe (s_server serves one connection at a time).

    // The system roots alone do not know the test CA.
    let outcome = run(&format!(
        "http: {{ url: \"https://127.0.0.1:{port}/\" }}\ntimeout: 3s\n"
    ))
    .await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(
        outcome.reason.contains("TLS handshake with 127.0.0.1:")
            && outcome.reason.contains("UnknownIssuer"),
        "{}",
        outcome.reason
    );
}

#[tokio::test]
async fn rediss_probe_trusts_a_ca_file() {
    let dir = TempDir::new("muster-rediss");
    make_certificates(dir.path());
    let port = support::free_port();
    let _server = redis_tls_server(dir.path(), port, false);
    let ca = dir.path().join("ca.pem");

    let trusted = format!(
        "redis: {{ url: \"rediss://127.0.0.1:{port}\", ca_file: \"{}\" }}\ntimeout: 3s\n",
        ca.display()
    );
    for outcome in runs(&trusted, 3).await {
        assert_eq!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
    }

    // The system roots do not know the test CA: a failure, not a hang.
    let outcome = run(&format!(
        "redis: {{ url: \"rediss://127.0.0.1:{port}\" }}\ntimeout: 3s\n"
    ))
    .await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(
        outcome.reason.to_lowercase().contains("certificate")
            || outcome.reason.contains("UnknownIssuer"),
        "{}",
        outcome.reason
    );
}

#[tokio::test]
async fn nats_tls_probe_trusts_a_ca_file() {
    let dir = TempDir::new("muster-nats-tls");
    make_certificates(dir.path());
    let port = support::free_port();
    let _server = nats_tls_server(dir.path(), port, false);
    let ca = dir.path().join("ca.pem");

    let trusted = format!(
        "nats: {{ url: \"tls://127.0.0.1:{port}\", ca_file: \"{}\" }}\ntimeout: 3s\n",
        ca.display()
    );
    for outcome in runs(&trusted, 3).await {
        assert_eq!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
    }

    let outcome = run(&format!(
        "nats: {{ url: \"tls://127.0.0.1:{port}\" }}\ntimeout: 3s\n"
    ))
    .await;
    assert_ne!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
}

#[tokio::test]
async fn mutual_tls_probes_present_a_client_certificate() {
    let dir = TempDir::new("muster-mtls");
    make_certificates(dir.path());

    // Redis with `tls-auth-clients yes`: refused without a certificate.
    let port = support::free_port();
    let _redis = redis_tls_server(dir.path(), port, true);
    let url = format!("rediss://127.0.0.1:{port}");
    let without = run(&format!(
        "redis: {{ url: \"{url}\", {} }}\ntimeout: 3s\n",
        tls_fields(dir.path(), false)
    ))
    .await;
    assert_ne!(without.status, ProbeStatus::Ok, "{without:?}");
    assert!(
        without.reason.contains("CertificateRequired"),
        "{}",
        without.reason
    );
    let with = run(&format!(
        "redis: {{ url: \"{url}\", {} }}\ntimeout: 3s\n",
        tls_fields(dir.path(), true)
    ))
    .await;
    assert_eq!(with.status, ProbeStatus::Ok, "{with:?}");

    // nats-server with --tlsverify.
    let port = support::free_port();
    let _nats = nats_tls_server(dir.path(), port, true);
    let url = format!("tls://127.0.0.1:{port}");
    let without = run(&format!(
        "nats: {{ url: \"{url}\", {} }}\ntimeout: 3s\n",
        tls_fields(dir.path(), false)
    ))
    .await;
    assert_ne!(without.status, ProbeStatus::Ok, "{without:?}");
    let with = run(&format!(
        "nats: {{ url: \"{url}\", {} }}\ntimeout: 3s\n",
        tls_fields(dir.path(), true)
    ))
    .await;
    assert_eq!(with.status, ProbeStatus::Ok, "{with:?}");

    // An HTTPS server that requires a client certificate (s_server -Verify).
    let port = support::free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", "server.pem", "-key", "server.key"])
        .args(["-Verify", "1", "-CAfile", "ca.pem"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let _https = KillOnDrop(child);
    support::wait_for_port(port, Duration::from_secs(10));
    let url = format!("https://127.0.0.1:{port}/");
    let without = run(&format!(
        "http: {{ url: \"{url}\", {} }}\ntimeout: 3s\n",
        tls_fields(dir.path(), false)
    ))
    .await;
    assert_ne!(without.status, ProbeStatus::Ok, "{without:?}");
    // The TLS alert under hyper's "connection error" is in the reason.
    assert!(without.reason.contains("alert"), "{}", without.reason);
    let with = run(&format!(
        "http: {{ url: \"{url}\", {} }}\ntimeout: 3s\n",
        tls_fields(dir.path(), true)
    ))
    .await;
    assert_eq!(with.status, ProbeStatus::Ok, "{with:?}");
}

#[test]
fn muster_check_takes_cacert_cert_and_key() {
    let dir = TempDir::new("muster-check-tls");
    make_certificates(dir.path());
    let port = support::free_port();
    let _redis = redis_tls_server(dir.path(), port, true);
    let url = format!("rediss://127.0.0.1:{port}");
    let check = |extra: &[&str]| {
        Muster::new()
            .args(["check", "--redis", &url, "--timeout", "3s"])
            .args(extra)
            .current_dir(dir.path())
            .output()
            .expect("run muster check")
    };
    let out = check(&[
        "--cacert",
        "ca.pem",
        "--cert",
        "client.pem",
        "--key",
        "client.key",
    ]);
    assert!(out.status.success(), "{out:?}");
    // A TLS Redis asks for a client certificate: without one, not ready (1).
    let out = check(&["--cacert", "ca.pem"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CertificateRequired"),
        "{out:?}"
    );
    // A certificate without its key is a usage error (2) naming the flags.
    let out = check(&["--cacert", "ca.pem", "--cert", "client.pem"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--cert needs --key"),
        "{out:?}"
    );
}

#[test]
fn bad_client_certificate_fields_are_config_errors_naming_the_field() {
    let dir = TempDir::new("muster-mtls-bad");
    make_certificates(dir.path());
    std::fs::write(dir.path().join("empty.pem"), "nothing here\n").unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let (cert, key) = (file("client.pem"), file("client.key"));
    let cases = [
        // (probe, field named, words in the error)
        (
            format!("http: {{ url: \"https://127.0.0.1:1/\", cert_file: \"{cert}\" }}"),
            "key_file",
            "cert_file needs key_file",
        ),
        (
            format!("redis: {{ url: \"rediss://127.0.0.1:1\", key_file: \"{key}\" }}"),
            "cert_file",
            "key_file needs cert_file",
        ),
        (
            format!("http: {{ url: \"http://127.0.0.1:1/\", cert_file: \"{cert}\", key_file: \"{key}\" }}"),
            "cert_file",
            "cert_file is for https:// URLs",
        ),
        (
            format!("redis: {{ url: \"redis://127.0.0.1:1\", cert_file: \"{cert}\", key_file: \"{key}\" }}"),
            "cert_file",
            "cert_file is for rediss:// URLs",
        ),
        (
            format!("nats: {{ url: \"nats://127.0.0.1:1\", cert_file: \"{cert}\", key_file: \"{key}\" }}"),
            "cert_file",
            "cert_file is for a tls:// url",
        ),
        (
            format!("http: {{ url: \"https://127.0.0.1:1/\", cert_file: \"{}\", key_file: \"{key}\" }}", file("missing.pem")),
            "cert_file",
            "cannot read certificate file",
        ),
        (
            format!("nats: {{ url: \"tls://127.0.0.1:1\", cert_file: \"{}\", key_file: \"{key}\" }}", file("empty.pem")),
            "cert_file",
            "holds no PEM certificate",
        ),
        (
            format!("redis: {{ url: \"rediss://127.0.0.1:1\", cert_file: \"{cert}\", key_file: \"{}\" }}", file("empty.pem")),
            "key_file",
            "holds no PEM private key",
        ),
        (
            // The server's key does not go with the client's certificate.
            format!("http: {{ url: \"https://127.0.0.1:1/\", cert_file: \"{cert}\", key_file: \"{}\" }}", file("server.key")),
            "key_file",
            "does not go with",
        ),
    ];
    for (yaml, field, want) in cases {
        let err = match build(&spec(&yaml), &ProbeContext::default()) {
            Ok(_) => panic!("{yaml}: built"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("field `{field}`")) && err.contains(want),
            "{yaml}: {err}"
        );
    }
}

#[test]
fn a_bad_ca_file_is_a_config_error_naming_the_field() {
    let dir = TempDir::new("muster-https-bad");
    std::fs::write(dir.path().join("empty.pem"), "no certificate here\n").unwrap();
    let cases = [
        (
            format!(
                "https://127.0.0.1:1/\", ca_file: \"{}",
                dir.path().join("missing.pem").display()
            ),
            "cannot read CA file",
        ),
        (
            format!(
                "https://127.0.0.1:1/\", ca_file: \"{}",
                dir.path().join("empty.pem").display()
            ),
            "holds no PEM certificate",
        ),
        (
            format!(
                "http://127.0.0.1:1/\", ca_file: \"{}",
                dir.path().join("empty.pem").display()
            ),
            "ca_file is for https:// URLs",
        ),
    ];
    let redis_cases = [
        (
            format!(
                "rediss://127.0.0.1:1\", ca_file: \"{}",
                dir.path().join("missing.pem").display()
            ),
            "cannot read CA file",
        ),
        (
            format!(
                "redis://127.0.0.1:1\", ca_file: \"{}",
                dir.path().join("empty.pem").display()
            ),
            "ca_file is for rediss:// URLs",
        ),
    ];
    let nats_cases = [(
        format!(
            "nats://127.0.0.1:1\", ca_file: \"{}",
            dir.path().join("empty.pem").display()
        ),
        "ca_file is for a tls:// url",
    )];
    let all = cases
        .into_iter()
        .map(|(u, w)| ("http", u, w))
        .chain(redis_cases.into_iter().map(|(u, w)| ("redis", u, w)))
        .chain(nats_cases.into_iter().map(|(u, w)| ("nats", u, w)));
    for (kind, url, want) in all {
        let s = spec(&format!("{kind}: {{ url: \"{url}\" }}\n"));
        let err = match build(&s, &ProbeContext::default()) {
            Ok(_) => panic!("{url}: built"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("field `ca_file`") && err.contains(want),
            "{url}: {err}"
        );
    }
}
