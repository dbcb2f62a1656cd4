//! The Dockerfile, built the way this machine can (no registry): the base from
//! scripts/build-base-image.sh, the binary cargo built for these tests,
//! `--target host-binary` through scripts/build-image.sh. The image must print
//! its version, run as a non-root user, serve /healthz on a published loopback
//! port and turn healthy through its own HEALTHCHECK.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{ensure_test_images, free_port, DockerProject, TempDir, BUSYBOX_IMAGE};

/// The image these tests build (kept between runs while the binary is the same).
const IMAGE: &str = "muster-test/muster:dockerfile";
const SOCKET: &str = "/var/run/docker.sock";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds IMAGE once per test binary from the binary under test (the script
/// keeps an image built from the same binary and base).
fn ensure_image() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/build-image.sh"))
            .arg(env!("CARGO_BIN_EXE_muster"))
            .arg(IMAGE)
            .output()
            .expect("run scripts/build-image.sh");
        assert!(
            out.status.success(),
            "scripts/build-image.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker run --rm` of the image, labelled with the test's project.
fn run_once(project: &DockerProject, args: &[&str]) -> String {
    let label = format!("com.docker.compose.project={}", project.name);
    let mut all = vec!["run", "--rm", "--label", &label, IMAGE];
    all.extend_from_slice(args);
    ok(docker(&all), &format!("docker run {args:?}"))
}

fn inspect(format: &str, target: &str) -> String {
    ok(
        docker(&["inspect", "--format", format, target]),
        "docker inspect",
    )
}

/// GET path on 127.0.0.1:port: status code and body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {raw:?}")))?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((code, body.to_string()))
}

#[test]
fn image_prints_its_version_and_runs_as_a_non_root_user() {
    ensure_image();
    let project = DockerProject::new("shipversion");
    let version = run_once(&project, &["muster", "--version"]);
    assert_eq!(version, format!("muster {}", env!("CARGO_PKG_VERSION")));

    assert_eq!(run_once(&project, &["id", "-u"]), "10001");
    assert_eq!(inspect("{{.Config.User}}", IMAGE), "10001:10001");
    // Only the muster binary was added, owned by root (the user cannot replace it).
    assert_eq!(run_once(&project, &["ls", "/usr/local/bin"]), "muster");
    assert_eq!(
        run_once(&project, &["stat", "-c", "%U %a", "/usr/local/bin/muster"]),
        "root 755"
    );
    assert_eq!(
        inspect("{{json .Config.Healthcheck.Test}}", IMAGE),
        r#"["CMD","muster","check","--self"]"#
    );
    assert_eq!(
        inspect("{{json .Config.ExposedPorts}}", IMAGE),
        r#"{"8686/tcp":{}}"#
    );
    assert!(inspect("{{json .Config.Env}}", IMAGE).contains("MUSTER_LISTEN=0.0.0.0:8686"));
    assert_eq!(
        inspect("{{json .Config.Cmd}}", IMAGE),
        r#"["muster","serve"]"#
    );
}

#[test]
fn container_serves_healthz_and_its_healthcheck_turns_healthy() {
    ensure_image();
    ensure_test_images();
    let dir = TempDir::new("muster-ship-image");
    let project = DockerProject::new("shipserve");
    // A stack for `muster serve` to supervise (nothing of it needs to run).
    let compose = dir.path().join("compose.yaml");
    std::fs::write(
        &compose,
        format!(
            "services:\n  web:\n    image: {BUSYBOX_IMAGE}\n    command: [\"sleep\", \"3600\"]\n"
        ),
    )
    .unwrap();
    let gid = std::fs::metadata(SOCKET)
        .expect("the Docker socket")
        .gid()
        .to_string();
    let port = free_port();
    let name = format!("{}-muster", project.name);
    let label = format!("com.docker.compose.project={}", project.name);
    let publish = format!("127.0.0.1:{port}:8686");
    let socket = format!("{SOCKET}:{SOCKET}:ro");
    let stack = format!("{}:/stack/compose.yaml:ro", compose.display());
    let project_env = format!("COMPOSE_PROJECT_NAME={}", project.name);
    ok(
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &label,
            "--group-add",
            &gid,
            "-v",
            &socket,
            "-v",
            &stack,
            "-e",
            &project_env,
            "-p",
            &publish,
            // The image's HEALTHCHECK command, checked every second instead of 10 s.
            "--health-interval",
            "1s",
            IMAGE,
        ]),
        "docker run muster serve",
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let (code, _) = loop {
        match http_get(port, "/healthz") {
            Ok(reply) => break reply,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!(
                "/healthz not reachable on 127.0.0.1:{port}: {e}\nlogs:\n{}",
                String::from_utf8_lossy(&docker(&["logs", &name]).stderr)
            ),
        }
    };
    assert_eq!(code, 200);
    // It supervises the mounted stack.
    let (code, body) = http_get(port, "/status").unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("\"web\""), "{body}");

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let health = inspect("{{.State.Health.Status}}", &name);
        if health == "healthy" {
            break;
        }
        assert!(
            health == "starting" && Instant::now() < deadline,
            "health {health}: {}",
            inspect("{{json .State.Health.Log}}", &name)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The serving process (pid 1) is not root.
    let status = ok(
        docker(&["exec", &name, "cat", "/proc/1/status"]),
        "docker exec",
    );
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert_eq!(uid.split_whitespace().nth(1), Some("10001"), "{uid}");
}

#[test]
fn build_context_holds_only_what_the_dockerfile_reads() {
    ensure_test_images();
    let project = DockerProject::new("shipcontext");
    let tag = format!("muster-test/context:{}", project.name);
    // Copy the whole context the repository's .dockerignore lets through.
    let dockerfile = format!(
        "FROM {BUSYBOX_IMAGE}\nCOPY . /ctx\nLABEL com.docker.compose.project={}\n",
        project.name
    );
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-f", "-"])
        .arg(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    ok(
        child.wait_with_output().unwrap(),
        "docker build of the context",
    );
    let label = format!("com.docker.compose.project={}", project.name);
    let listing = docker(&[
        "run", "--rm", "--label", &label, &tag, "busybox", "find", "/ctx",
    ]);
    let _ = docker(&["rmi", "-f", &tag]);
    let listing = ok(listing, "find /ctx");
    let mut top: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("/ctx/"))
        .filter(|l| !l.contains('/'))
        .collect();
    top.sort();
    top.retain(|t| *t != "target");
    assert_eq!(
        top,
        vec![
            "Cargo.lock",
            "Cargo.toml",
            "benches",
            "crates",
            "protocol",
            "src"
        ],
        "{listing}"
    );
    // Of target/ only the release binary may come in (when it was built).
    for line in listing.lines().filter(|l| l.starts_with("/ctx/target/")) {
        assert!(
            ["/ctx/target/release", "/ctx/target/release/muster"].contains(&line),
            "{line} is in the build context"
        );
    }
    assert!(listing.contains("/ctx/src/main.rs"));
    assert!(listing.contains("/ctx/crates/muster-signal/Cargo.toml"));
    // The Lua scripts the crate compiles in with include_str!.
    assert!(listing.contains("/ctx/protocol/assert.lua"));
}
