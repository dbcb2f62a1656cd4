//! [`Muster`]: the one command builder for the `muster` binary in tests.
//!
//! Why: a test that starts muster with whatever the shell holds asks the
//! user's services instead of its own. With the example stack's `muster serve`
//! on the default 127.0.0.1:8686, `muster status` in a test read *that*
//! muster's five services; an inherited `MUSTER_REDIS_URL`, `COMPOSE_FILE` or
//! `DOCKER_CONFIG` points at a user's Redis, stack or registry login the same
//! way. So every muster a test spawns starts from an isolated environment and
//! the test adds only what it means to use:
//!
//! - every `MUSTER_*` and `COMPOSE_*` variable of the test process, and
//!   `DOCKER_CONFIG`, removed (`DOCKER_HOST` stays: it is the engine under test);
//! - `MUSTER_LISTEN` on a free loopback port (never 127.0.0.1:8686);
//! - `MUSTER_REDIS_URL` on [`NO_REDIS`], a port nothing listens on, until the
//!   test names its own Redis ([`Muster::redis`]);
//! - a `MUSTER_NAMESPACE` of this test process (`mt<pid>`: never the user's
//!   `muster`, and the same for every muster of one test, so an `up --serve`
//!   and a later `status` or `history` agree) and a `MUSTER_STATE_FILE` of
//!   each muster's own;
//! - an empty working directory of its own, so no `config/muster.yaml` or
//!   `compose.yaml` of the checkout or the caller is picked up.
//!
//! Flags beat these variables (muster's own precedence), so a test that passes
//! `--listen`, `--redis-url` or `--namespace` gets exactly that. A test whose
//! `--config` file sets one of these keys must say so with
//! [`Muster::unset`], because a variable beats the config file.

use std::ffi::OsStr;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A Redis URL nothing answers on: port 1 (tcpmux) is not served on loopback,
/// so a connection is refused at once, for tests without a Redis of their own.
pub const NO_REDIS: &str = "redis://127.0.0.1:1";

/// The `muster` binary as a [`Command`] (through `Deref`), with the isolated
/// defaults of this module already applied.
pub struct Muster {
    cmd: Command,
}

impl Muster {
    /// `muster` with the isolated defaults (see the module doc).
    pub fn new() -> Muster {
        Muster::launched_by(&[])
    }

    /// `muster` started through `launcher` (a program and its arguments, the
    /// muster binary's path appended), e.g. `["nsenter", "--net=/proc/PID/ns/net"]`
    /// for a muster that probes from a container's network namespace.
    pub fn launched_by(launcher: &[&str]) -> Muster {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let scratch = run_dir().join(n.to_string());
        std::fs::create_dir_all(&scratch).expect("create the muster test directory");
        let bin = env!("CARGO_BIN_EXE_muster");
        let mut cmd = match launcher.split_first() {
            None => Command::new(bin),
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
        };
        for (key, _) in std::env::vars_os() {
            if inherited_setting(&key) {
                cmd.env_remove(&key);
            }
        }
        cmd.current_dir(&scratch)
            .env("MUSTER_LISTEN", format!("127.0.0.1:{}", super::free_port()))
            .env("MUSTER_REDIS_URL", NO_REDIS)
            .env("MUSTER_NAMESPACE", format!("mt{}", std::process::id()))
            .env("MUSTER_STATE_FILE", scratch.join("state.json"));
        Muster { cmd }
    }

    /// The Redis this muster uses for signals, history and revisions.
    pub fn redis(mut self, url: &str) -> Muster {
        self.cmd.env("MUSTER_REDIS_URL", url);
        self
    }

    /// The key prefix in Redis (instead of the test process's `mt<pid>`).
    pub fn namespace(mut self, namespace: &str) -> Muster {
        self.cmd.env("MUSTER_NAMESPACE", namespace);
        self
    }

    /// The local state file (instead of one in this muster's own directory).
    pub fn state_file(mut self, path: impl AsRef<Path>) -> Muster {
        self.cmd.env("MUSTER_STATE_FILE", path.as_ref());
        self
    }

    /// The working directory muster runs in (instead of an empty one).
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Muster {
        self.cmd.current_dir(dir);
        self
    }

    /// Removes one of the isolated defaults, for a test whose `--config` file
    /// sets that key itself (a variable would beat the file).
    pub fn unset(mut self, key: &str) -> Muster {
        self.cmd.env_remove(key);
        self
    }

    /// The stack a test works on, before the subcommand: `-f FILE -p PROJECT
    /// --listen 127.0.0.1:LISTEN` (the health endpoint the test then reads).
    pub fn stack(mut self, file: impl AsRef<Path>, project: &str, listen: u16) -> Muster {
        self.cmd
            .arg("-f")
            .arg(file.as_ref())
            .args(["-p", project, "--listen"])
            .arg(format!("127.0.0.1:{listen}"));
        self
    }

    /// Starts muster with `args` added (a long-running `up --serve`, `serve`),
    /// its output discarded; it is killed when the guard drops, also when the
    /// test panics.
    pub fn spawn_quiet(&mut self, args: &[&str]) -> super::KillOnDrop {
        let child = self
            .cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start muster");
        super::KillOnDrop(child)
    }

    /// Runs muster to the end with `args` added and returns its output
    /// (panics only when the binary cannot be started at all).
    pub fn run(&mut self, args: &[&str]) -> Output {
        self.cmd.args(args).output().expect("run muster")
    }
}

impl Deref for Muster {
    type Target = Command;
    fn deref(&self) -> &Command {
        &self.cmd
    }
}

impl DerefMut for Muster {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }
}

/// Runs `cmd` to the end, asserting exit 0 (stdout and stderr in the message).
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run muster");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// stdout then stderr of a finished muster, as text (for messages and
/// assertions that do not care which stream a line went to).
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A variable of the caller's shell that could point muster at a user's
/// services or settings.
fn inherited_setting(key: &OsStr) -> bool {
    let key = key.to_string_lossy();
    key.starts_with("MUSTER_") || key.starts_with("COMPOSE_") || key == "DOCKER_CONFIG"
}

/// This test process's directory for muster working directories and state
/// files, under the target's tmp dir. Made once; directories that earlier,
/// finished test processes left there are removed then.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("muster-runs");
        if let Ok(entries) = std::fs::read_dir(&base) {
            for entry in entries.flatten() {
                let pid = entry.file_name().to_string_lossy().parse::<u32>().ok();
                let finished = pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                if finished {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("create the muster test directory");
        dir
    })
}
