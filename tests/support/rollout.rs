//! Shared pieces of the rollout tests: locally built web images, a project
//! guard with its own Redis and namespace, the `muster` binary, and a client
//! container that polls the service through its DNS name and logs every
//! request (never retrying, so a failure shows).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{DockerProject, Muster, RedisServer, TempDir, BUSYBOX_IMAGE};

pub const V1: &str = "muster-test/web:v1";
pub const V2: &str = "muster-test/web:v2";
/// Serves `/` but has no `/healthz`: its readiness check never passes.
pub const BAD: &str = "muster-test/web:bad";

/// Builds the three web images from muster-test/busybox:1 (once per test binary).
/// Each serves its name at `/` on port 8080; v1 and v2 also serve `/healthz`.
pub fn ensure_web_images() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        super::ensure_test_images();
        let dir = TempDir::new("muster-web-images");
        for (tag, healthz) in [(V1, true), (V2, true), (BAD, false)] {
            let name = tag.rsplit(':').next().unwrap();
            let ctx = dir.path().join(name);
            std::fs::create_dir_all(ctx.join("www")).unwrap();
            std::fs::write(ctx.join("www/index.html"), format!("{name}\n")).unwrap();
            if healthz {
                std::fs::write(ctx.join("www/healthz"), "ok\n").unwrap();
            }
            std::fs::write(
                ctx.join("Dockerfile"),
                format!(
                    "FROM {BUSYBOX_IMAGE}\nCOPY www /www\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
                ),
            )
            .unwrap();
            let status = Command::new("docker")
                .args(["build", "-q", "-t", tag, "--label", "muster.test=1"])
                .arg(&ctx)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("docker build");
            assert!(status.success(), "docker build {tag} failed");
        }
    });
}

/// One test's world: a compose project (removed on drop), a Redis for the
/// revisions, a namespace and a directory for the compose files.
pub struct Env {
    pub project: DockerProject,
    pub redis: RedisServer,
    pub dir: TempDir,
    pub namespace: String,
}

impl Env {
    pub fn new(test: &str) -> Env {
        ensure_web_images();
        let project = DockerProject::new(test);
        let namespace = format!("t{}", project.name);
        Env {
            project,
            redis: RedisServer::start(),
            dir: TempDir::new("muster-rollout"),
            namespace,
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `muster -p PROJECT -f FILE…` with this test's Redis and namespace.
    pub fn muster(&self, files: &[&str]) -> Muster {
        let mut cmd = Muster::new()
            .redis(&self.redis.url())
            .namespace(&self.namespace)
            .state_file(self.dir.path().join("state.json"));
        cmd.arg("-p").arg(&self.project.name);
        for f in files {
            cmd.arg("-f").arg(self.dir.path().join(f));
        }
        cmd
    }

    /// Runs muster to the end; prints its output when it fails the expectation.
    pub fn run(&self, files: &[&str], args: &[&str]) -> Output {
        let out = self.muster(files).args(args).output().expect("run muster");
        eprintln!(
            "$ muster {}\n--- exit {:?}\n{}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `muster up` (must succeed).
    pub fn up(&self, files: &[&str]) {
        let out = self.run(files, &["up", "--wait-timeout", "60s"]);
        assert!(out.status.success(), "muster up failed");
    }

    /// `muster rollout web --image IMAGE --monitor 1s --drain 1s`.
    pub fn rollout_web(&self, files: &[&str], image: &str) -> Output {
        self.run(
            files,
            &[
                "rollout",
                "web",
                "--image",
                image,
                "--monitor",
                "1s",
                "--drain",
                "1s",
            ],
        )
    }

    /// The containers of a service: (name, image, id, running), by name.
    pub fn containers(&self, service: &str) -> Vec<Container> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-a",
                "--no-trunc",
                "--format",
                "{{.Names}}\t{{.Image}}\t{{.ID}}\t{{.State}}\t{{.Label \"io.muster.revision\"}}",
            ])
            .arg("--filter")
            .arg(self.project.label_filter())
            .arg("--filter")
            .arg(format!("label=com.docker.compose.service={service}"))
            .output()
            .expect("docker ps");
        let mut rows: Vec<Container> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() >= 4).then(|| Container {
                    name: f[0].to_string(),
                    image: f[1].to_string(),
                    id: f[2].to_string(),
                    running: f[3] == "running",
                    revision: f.get(4).and_then(|r| r.parse().ok()),
                })
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// Starts a client container on the project network polling `service:8080`.
    pub fn client(&self, service: &str) -> Client {
        let name = format!("{}-client", self.project.name);
        // Each round: how many addresses the service name has, how many of them
        // answer /healthz, then one GET through the name. Every request is made
        // once; a failure is logged as FAIL, never retried.
        let script = format!(
            r#"while true; do
  n=$(busybox nslookup {service} 2>/dev/null | grep -c 'Address: ')
  r=0
  for ip in $(busybox nslookup {service} 2>/dev/null | sed -n 's/^Address: //p'); do
    busybox timeout 5 wget -q -O /dev/null http://$ip:8080/healthz && r=$((r+1))
  done
  if busybox timeout 5 wget -q -O /tmp/body http://{service}:8080/ 2>/tmp/err; then
    echo "dns=$n ready=$r ok $(cat /tmp/body)"
  else
    echo "dns=$n ready=$r FAIL $(cat /tmp/err)"
  fi
  busybox sleep 0.05
done"#
        );
        let status = Command::new("docker")
            .args(["run", "-d", "--name", &name])
            .args([
                "--label",
                &format!("com.docker.compose.project={}", self.project.name),
            ])
            .args(["--label", "com.docker.compose.service=test-client"])
            .args(["--network", &format!("{}_default", self.project.name)])
            .args([BUSYBOX_IMAGE, "sh", "-c", &script])
            .stdout(Stdio::null())
            .status()
            .expect("docker run client");
        assert!(status.success(), "client container did not start");
        let client = Client { name };
        // Wait until it has answered a few times.
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.lines().len() < 3 {
            assert!(Instant::now() < deadline, "the client never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
        client
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub id: String,
    pub running: bool,
    pub revision: Option<u64>,
}

/// The polling client; its log is the evidence.
pub struct Client {
    pub name: String,
}

/// One round of the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    /// Addresses the service name had.
    pub dns: u32,
    /// Of those, the ones that answered /healthz.
    pub ready: u32,
    pub ok: bool,
    /// The body (`v1`, `v2`), or the error.
    pub body: String,
}

impl Client {
    pub fn lines(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .expect("docker logs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Stops the client and parses its log.
    pub fn stop(self) -> Vec<Poll> {
        let _ = Command::new("docker")
            .args(["kill", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.lines()
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_poll(l).unwrap_or_else(|| panic!("unexpected client line {l:?}")))
            .collect()
    }
}

fn parse_poll(line: &str) -> Option<Poll> {
    let mut parts = line.splitn(4, ' ');
    let dns = parts.next()?.strip_prefix("dns=")?.parse().ok()?;
    let ready = parts.next()?.strip_prefix("ready=")?.parse().ok()?;
    let ok = match parts.next()? {
        "ok" => true,
        "FAIL" => false,
        _ => return None,
    };
    Some(Poll {
        dns,
        ready,
        ok,
        body: parts.next().unwrap_or("").trim().to_string(),
    })
}

/// Asserts on a poll log: no failed request, never fewer than `min_ready`
/// ready replicas (and as many in DNS), never more than `max_dns` in DNS.
pub fn assert_polls(polls: &[Poll], min_ready: u32, max_dns: u32) {
    assert!(polls.len() >= 10, "too few polls to judge: {polls:?}");
    let failed: Vec<&Poll> = polls.iter().filter(|p| !p.ok).collect();
    assert!(
        failed.is_empty(),
        "{} failed request(s): {failed:?}",
        failed.len()
    );
    let low: Vec<&Poll> = polls
        .iter()
        .filter(|p| p.ready < min_ready || p.dns < min_ready)
        .collect();
    assert!(
        low.is_empty(),
        "fewer than {min_ready} ready replicas: {low:?}"
    );
    let high: Vec<&Poll> = polls.iter().filter(|p| p.dns > max_dns).collect();
    assert!(high.is_empty(), "more than {max_dns} addresses: {high:?}");
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A compose file: `web` with `replicas` busybox httpd containers of `image`.
/// `health` adds a Docker healthcheck on /healthz (200 ms interval, 3 retries).
pub fn web_compose(image: &str, replicas: u32, health: bool) -> String {
    let mut text = format!(
        "services:\n  web:\n    image: {image}\n    deploy:\n      replicas: {replicas}\n    stop_grace_period: 1s\n"
    );
    if health {
        text.push_str(
            "    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/healthz\"]\n      interval: 200ms\n      timeout: 2s\n      retries: 3\n",
        );
    }
    text
}

/// An override file giving `web` an x-muster http probe on its service name.
pub const PROBES: &str = "services:\n  web:\n    x-muster:\n      probes:\n        - http: { url: \"http://web:8080/healthz\" }\n          period: 200ms\n          failure_threshold: 3\n";

/// Parses `muster --json history web`.
pub fn history(env: &Env, files: &[&str], service: &str) -> serde_json::Value {
    let out = env.run(files, &["--json", "history", service]);
    assert!(out.status.success(), "history failed");
    serde_json::from_str(stdout(&out).trim()).expect("history JSON")
}
