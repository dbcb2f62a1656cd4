//! The one support module of the integration tests (every `tests/<area>/main.rs`
//! and the benches mount it): real redis-server and nats-server processes on
//! free loopback ports, killed when dropped (also when a test panics), Docker
//! project guards, and [`Muster`], the one way a test starts the `muster`
//! binary, isolated from any muster, Redis or settings of the user's shell.
//! Helpers only one area uses live in that area's submodule here
//! (`support::rollout`, `support::grace`, …), so there is one place to look.

// Each area uses a different part of this module (and its re-exports).
#![allow(dead_code, unused_imports)]

pub mod bench;
pub mod build;
pub mod certs;
pub mod compose;
pub mod grace;
pub mod health;
pub mod hosts;
pub mod levels;
pub mod muster;
pub mod registry;
pub mod rollout;
pub mod signal;
pub mod stack;
pub mod token;
pub mod webhook;

pub use muster::{text, Muster};

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test lets a call that must end at its own short timeout run
/// before it calls it a hang. Generous on purpose: a loaded machine must not
/// fail a test of behaviour, and how fast things are is for the benches.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Waits until something accepts TCP connections on 127.0.0.1:port.
pub fn wait_for_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {within:?}");
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A real redis-server on a free loopback port.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    pub dir: TempDir,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts redis-server with no persistence and keyspace expiry events on.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts redis-server with extra `--name value` arguments.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let port = free_port();
        let dir = TempDir::new("muster-redis");
        let mut server = RedisServer {
            port,
            child: None,
            dir,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--notify-keyspace-events", "Ex"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (bash scripts/setup.sh)");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and leaves it down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real nats-server on a free loopback port.
pub struct NatsServer {
    pub port: u16,
    pub monitor_port: u16,
    child: Option<Child>,
    pub dir: TempDir,
    jetstream: bool,
    extra_args: Vec<String>,
}

impl NatsServer {
    pub fn start(jetstream: bool) -> NatsServer {
        Self::start_with(jetstream, &[])
    }

    pub fn start_with(jetstream: bool, extra: &[&str]) -> NatsServer {
        let mut server = NatsServer {
            port: free_port(),
            monitor_port: free_port(),
            child: None,
            dir: TempDir::new("muster-nats"),
            jetstream,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()]);
        if self.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.dir.path());
        }
        let child = cmd
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (bash scripts/setup.sh)");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Images built by scripts/build-test-images.sh (FROM scratch, no registry).
pub const BUSYBOX_IMAGE: &str = "muster-test/busybox:1";
pub const REDIS_IMAGE: &str = "muster-test/redis:1";
pub const NATS_IMAGE: &str = "muster-test/nats:1";

/// Builds the test images once per test binary (the script skips existing ones).
pub fn ensure_test_images() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-test-images.sh");
        let status = Command::new("bash")
            .arg(script)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/build-test-images.sh");
        assert!(status.success(), "scripts/build-test-images.sh failed");
    });
}

/// A unique compose project name for one test; everything Docker holds under
/// it (containers, networks, volumes, by the compose project label) is removed
/// when the guard drops, also after a failed assertion.
pub struct DockerProject {
    pub name: String,
}

impl DockerProject {
    pub fn new(test: &str) -> DockerProject {
        let name = format!("mt{}{}", std::process::id(), test.replace(['_', ' '], ""))
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>();
        let project = DockerProject { name };
        project.remove_all();
        project
    }

    pub fn label_filter(&self) -> String {
        format!("label=com.docker.compose.project={}", self.name)
    }

    /// Removes containers, then networks, volumes and images of this project
    /// (muster labels the images it builds with the project).
    pub fn remove_all(&self) {
        remove_labelled(&format!("com.docker.compose.project={}", self.name));
    }
}

/// Removes every container (with its anonymous volumes), then network, volume
/// and image that carries `label` (`key=value`); what is not there is skipped.
pub fn remove_labelled(label: &str) {
    let filter = format!("label={label}");
    for (list, remove) in [
        (vec!["ps", "-aq", "--filter"], vec!["rm", "-f", "-v"]),
        (
            vec!["network", "ls", "-q", "--filter"],
            vec!["network", "rm"],
        ),
        (
            vec!["volume", "ls", "-q", "--filter"],
            vec!["volume", "rm", "-f"],
        ),
        (
            vec!["image", "ls", "-aq", "--filter"],
            vec!["image", "rm", "-f"],
        ),
    ] {
        let out = Command::new("docker")
            .args(&list)
            .arg(&filter)
            .output()
            .expect("run docker");
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(&remove)
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Everything Docker holds with one label (a bench's containers and
/// network), removed when dropped, also when the bench panics half-way.
pub struct LabelGuard(pub &'static str);

impl Drop for LabelGuard {
    fn drop(&mut self) {
        remove_labelled(self.0);
    }
}

impl Drop for DockerProject {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// Kills (and reaps) a child process when dropped, also when a test panics.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on 127.0.0.1:port (5 s read timeout): status code and body,
/// or `None` when nothing answers or the answer is not HTTP.
/// `redis-cli -p PORT ARGS…` against a test's own redis-server; its trimmed stdout.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed (bash scripts/setup.sh)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_at(&format!("127.0.0.1:{port}"), path)
}

/// [`http_get`] on `addr` (`host:port`), e.g. a muster in a test host's
/// network namespace, listening on that host's address.
pub fn http_get_at(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The lines a child writes to its piped stdout, read on a thread of their
/// own, so a test can wait for the next one with a timeout.
pub fn stdout_lines(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Writes `yaml` as `compose.yaml` in `dir` and returns its path.
pub fn write_compose(dir: &TempDir, yaml: &str) -> PathBuf {
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, yaml).expect("write compose.yaml");
    file
}

/// What `container` gets from `http://127.0.0.1:8080/` inside its own
/// network namespace (for services in `network_mode: service:X`), trimmed.
pub fn page_on_loopback(container: &str) -> String {
    let page = docker(&[
        "exec",
        container,
        "wget",
        "-q",
        "-O-",
        "http://127.0.0.1:8080/",
    ]);
    page.trim().to_string()
}

/// `docker ARGS…` (the CLI, against the engine under test), which must
/// succeed (else a panic naming the arguments and docker's stderr); its stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker inspect -f FORMAT CONTAINER`, trimmed (panics when it fails).
pub fn docker_inspect(container: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, container])
        .trim()
        .to_string()
}
