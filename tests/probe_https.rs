//! TLS probes against real servers on loopback, with a CA the test makes
//! (openssl CLI): `https://` against `openssl s_server -www`, `rediss://`
//! against a redis-server listening with TLS only, `tls://` against a
//! nats-server with `--tls`. Trusted through `ca_file`
//! the probes pass; without it the failure says why; a CA file that is
//! missing, empty or given for a plain URL is a config error naming `ca_file`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TempDir;
use muster::probe::spec::ProbeSpec;
use muster::probe::{build, ProbeContext, ProbeStatus};
use muster::supervisor::runner::run_once;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (ca.pem) and a server certificate for 127.0.0.1 signed by it
/// (server.pem, server.key) in `dir`.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=muster test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

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
    common::wait_for_port(port, Duration::from_secs(10));
    KillOnDrop(child)
}

fn spec(yaml: &str) -> ProbeSpec {
    serde_saphyr::from_str(yaml).expect("probe spec parses")
}

#[tokio::test]
async fn https_probe_trusts_a_ca_file_and_names_an_unknown_issuer() {
    let dir = TempDir::new("muster-https");
    make_certificates(dir.path());
    let port = common::free_port();
    let _server = start_tls_server(dir.path(), port);
    let ca = dir.path().join("ca.pem");

    // Trusted through ca_file: ok, run after run (s_server closes each
    // HTTP/1.0 connection, so every run also makes a new TLS connection).
    let trusted = spec(&format!(
        "http: {{ url: \"https://127.0.0.1:{port}/\", ca_file: \"{}\" }}\ntimeout: 3s\n",
        ca.display()
    ));
    let mut probe = build(&trusted, &ProbeContext::default()).expect("probe builds");
    for _ in 0..3 {
        let outcome = run_once(probe.as_mut(), Duration::from_secs(3)).await;
        assert_eq!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
        assert_eq!(outcome.reason, "HTTP 200");
    }

    // s_server serves one connection at a time: let go of this probe's.
    drop(probe);

    // The system roots alone do not know the test CA.
    let untrusted = spec(&format!(
        "http: {{ url: \"https://127.0.0.1:{port}/\" }}\ntimeout: 3s\n"
    ));
    let mut probe = build(&untrusted, &ProbeContext::default()).expect("probe builds");
    let outcome = run_once(probe.as_mut(), Duration::from_secs(3)).await;
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
    let port = common::free_port();
    let server = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--tls-port",
        ])
        .arg(port.to_string())
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "no",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let _server = KillOnDrop(server);
    common::wait_for_port(port, Duration::from_secs(10));
    let ca = dir.path().join("ca.pem");

    let trusted = spec(&format!(
        "redis: {{ url: \"rediss://127.0.0.1:{port}\", ca_file: \"{}\" }}\ntimeout: 3s\n",
        ca.display()
    ));
    let mut probe = build(&trusted, &ProbeContext::default()).expect("probe builds");
    for _ in 0..3 {
        let outcome = run_once(probe.as_mut(), Duration::from_secs(3)).await;
        assert_eq!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
    }

    // The system roots do not know the test CA: a failure, not a hang.
    let untrusted = spec(&format!(
        "redis: {{ url: \"rediss://127.0.0.1:{port}\" }}\ntimeout: 3s\n"
    ));
    let mut probe = build(&untrusted, &ProbeContext::default()).expect("probe builds");
    let outcome = run_once(probe.as_mut(), Duration::from_secs(3)).await;
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
    let port = common::free_port();
    let server = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["--tls", "--tlscert", "server.pem", "--tlskey", "server.key"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server");
    let _server = KillOnDrop(server);
    common::wait_for_port(port, Duration::from_secs(10));
    let ca = dir.path().join("ca.pem");

    let trusted = spec(&format!(
        "nats: {{ url: \"tls://127.0.0.1:{port}\", ca_file: \"{}\" }}\ntimeout: 3s\n",
        ca.display()
    ));
    let mut probe = build(&trusted, &ProbeContext::default()).expect("probe builds");
    for _ in 0..3 {
        let outcome = run_once(probe.as_mut(), Duration::from_secs(3)).await;
        assert_eq!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
    }

    let untrusted = spec(&format!(
        "nats: {{ url: \"tls://127.0.0.1:{port}\" }}\ntimeout: 3s\n"
    ));
    let mut probe = build(&untrusted, &ProbeContext::default()).expect("probe builds");
    let outcome = run_once(probe.as_mut(), Duration::from_secs(3)).await;
    assert_ne!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
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
