//! A real image registry for the pull (and build) tests: Debian's
//! `docker-registry` (Distribution 2.8) on a free 127.0.0.1 port, with its own
//! config file and a temp storage directory, optionally behind htpasswd
//! (bcrypt) auth. The engine talks plain HTTP to 127.0.0.0/8 registries
//! without any daemon setting. Killed when dropped; [`TestImage`] removes the
//! images a test built or pulled.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::token::TokenServer;
use super::{free_port, wait_for_port, KillOnDrop, TempDir};

/// A running registry.
pub struct Registry {
    pub port: u16,
    pub dir: TempDir,
    /// `(user, password)` when it requires auth.
    pub auth: Option<(String, String)>,
    /// The Bearer token server, for a registry started with
    /// [`Registry::start_with_token`].
    pub token: Option<TokenServer>,
    child: Option<KillOnDrop>,
}

impl Registry {
    /// An anonymous registry.
    pub fn start() -> Registry {
        Self::start_inner(None, None)
    }

    /// A registry that requires `user` / `password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Self::start_inner(Some((user.to_string(), password.to_string())), None)
    }

    /// A registry behind Distribution's token auth (`WWW-Authenticate:
    /// Bearer realm=…`, as Docker Hub): a [`TokenServer`] of the test's own
    /// issues tokens to `user` / `password`, or for `refresh_token` (a
    /// config.json `identitytoken`).
    pub fn start_with_token(user: &str, password: &str, refresh_token: &str) -> Registry {
        let dir = TempDir::new("muster-registry");
        let token = TokenServer::start(dir.path(), user, password, refresh_token);
        Self::start_inner(
            Some((user.to_string(), password.to_string())),
            Some((dir, token)),
        )
    }

    fn start_inner(
        auth: Option<(String, String)>,
        token: Option<(TempDir, TokenServer)>,
    ) -> Registry {
        let port = free_port();
        let (dir, token) = match token {
            Some((dir, token)) => (dir, Some(token)),
            None => (TempDir::new("muster-registry"), None),
        };
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("create registry storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some(token) = &token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token.realm(),
                super::token::SERVICE,
                super::token::ISSUER,
                token.cert_pem.display()
            ));
        } else if let Some((user, password)) = &auth {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd must be installed (apache2-utils; bash scripts/setup.sh)");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(&htpasswd, &out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: muster-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).expect("log file"))
            .spawn()
            .expect("docker-registry must be installed (bash scripts/setup.sh)");
        let registry = Registry {
            port,
            dir,
            auth,
            token,
            child: Some(KillOnDrop(child)),
        };
        wait_for_port(port, Duration::from_secs(20));
        registry
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/repo:tag`.
    pub fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    /// The process id (for SIGSTOP / SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.0.id()).unwrap_or(0)
    }

    /// Pauses the registry (SIGSTOP): connections open but nothing answers.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// Resumes a paused registry (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// Stops the registry for good (its port refuses connections).
    pub fn kill(&mut self) {
        self.resume();
        self.child.take();
    }

    /// Pushes the local image `local` as `repo_tag` here and removes the
    /// engine's copy under that name (so a pull must fetch it). Returns the
    /// reference to pull.
    pub fn push(&self, local: &str, repo_tag: &str) -> String {
        let target = self.image(repo_tag);
        super::docker(&["tag", local, &target]);
        let config = TempDir::new("muster-push-config");
        if let Some((user, password)) = &self.auth {
            let mut login = Command::new("docker");
            login
                .arg("--config")
                .arg(config.path())
                .args(["login", "-u", user, "--password-stdin", &self.host()])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = login.spawn().expect("docker login");
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().expect("stdin");
                stdin.write_all(password.as_bytes()).expect("password");
            }
            let out = child.wait_with_output().expect("docker login");
            assert!(
                out.status.success(),
                "docker login failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = Command::new("docker")
            .arg("--config")
            .arg(config.path())
            .args(["push", &target])
            .stdout(Stdio::null())
            .output()
            .expect("docker push");
        assert!(
            out.status.success(),
            "docker push {target} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        super::docker(&["rmi", &target]);
        target
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, sig: &str) {
    if pid != 0 {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status();
    }
}

/// Images built or pulled by one test, removed (with `-f`) when dropped.
pub struct TestImage {
    pub names: Vec<String>,
}

impl TestImage {
    /// Builds `name` FROM the busybox test image with a layer of `size`
    /// random bytes (so it does not compress and a pull downloads it), split
    /// into `layers` files of one layer each. Labelled `muster.test=1`.
    pub fn build_random(name: &str, size: usize, layers: usize) -> TestImage {
        super::ensure_test_images();
        let dir = TempDir::new("muster-image-ctx");
        let layers = layers.max(1);
        // A label unique to this image first and no cache: concurrent builds share
        // no intermediate image that another test's cleanup could remove.
        let mut dockerfile = format!(
            "FROM {}\nLABEL muster.test=1 muster.test.image={name:?}\n",
            super::BUSYBOX_IMAGE
        );
        for i in 0..layers {
            write_random(&dir.path().join(format!("blob{i}")), size / layers);
            dockerfile.push_str(&format!("COPY blob{i} /blob{i}\n"));
        }
        std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
        let out = Command::new("docker")
            .args(["build", "-q", "--no-cache", "--force-rm", "-t", name])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("docker build");
        assert!(
            out.status.success(),
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestImage {
            names: vec![name.to_string()],
        }
    }

    /// Also removes `name` when dropped (e.g. what muster pulled).
    pub fn also(&mut self, name: &str) {
        self.names.push(name.to_string());
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("docker")
                .args(["rmi", "-f", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether the engine has `image`.
pub fn image_present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn write_random(path: &Path, size: usize) {
    use std::io::{Read, Write};
    let mut urandom = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    let mut out = std::fs::File::create(path).expect("create blob");
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len());
        urandom.read_exact(&mut buf[..n]).expect("read random");
        out.write_all(&buf[..n]).expect("write blob");
        left -= n;
    }
}

/// A docker CLI config directory with `config.json` = `json`.
pub fn docker_config(json: &str) -> TempDir {
    let dir = TempDir::new("muster-docker-config");
    std::fs::write(dir.path().join("config.json"), json).expect("write config.json");
    dir
}

/// A directory holding an executable `docker-credential-<name>` that answers
/// `user` / `secret` and writes the registry it was asked for to `asked`.
pub fn credential_helper(name: &str, user: &str, secret: &str) -> (TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("muster-cred-helper");
    let asked = dir.path().join("asked");
    let script = dir.path().join(format!("docker-credential-{name}"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\nprintf '%s' \"$host\" > '{}'\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}\\n' \"$host\"\n",
            asked.display()
        ),
    )
    .expect("write helper");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, asked)
}
