//! `muster status --watch` for real: in a tmux pane (a real terminal) against
//! a stack that `muster up --serve` supervises, keys sent with `send-keys` and
//! the screen read with `capture-pane`; on a terminal too small; over a pipe.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, text, DockerProject, KillOnDrop, Muster, TempDir, BUSYBOX_IMAGE};

/// A tmux server of this test's own (`-L` socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("mt{}{name}", std::process::id()),
        };
        let _ = tmux.run(&["kill-server"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux must be installed (bash scripts/setup.sh)")
    }

    /// A detached session of `width` x `height` running `script`.
    fn session(&self, name: &str, width: u16, height: u16, script: &Path) {
        let out = self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            &format!("bash {}", script.display()),
        ]);
        assert!(out.status.success(), "tmux new-session: {}", text(&out));
    }

    fn capture(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", name]).stdout).to_string()
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// Waits until the screen holds every one of `wanted`; returns it.
    fn wait_for(&self, name: &str, wanted: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.capture(name);
            if wanted.iter().all(|w| screen.contains(w)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "never {wanted:?} on screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// A script that runs `cmd` as the test built it (its directory, its
/// environment with the removed variables unset), then says how it exited.
fn script(dir: &Path, name: &str, cmd: &Command) -> PathBuf {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut body = String::new();
    if let Some(cwd) = cmd.get_current_dir() {
        body.push_str(&format!("cd {}\n", quote(cwd.as_os_str())));
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => body.push_str(&format!(
                "export {}={}\n",
                key.to_string_lossy(),
                quote(value)
            )),
            None => body.push_str(&format!("unset {}\n", key.to_string_lossy())),
        }
    }
    body.push_str(&quote(cmd.get_program()));
    for arg in cmd.get_args() {
        body.push(' ');
        body.push_str(&quote(arg));
    }
    body.push_str("\necho \"muster exited $?\"\nsleep 600\n");
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn watch_shows_the_live_stack_filters_shows_logs_and_quits_cleanly() {
    support::ensure_test_images();
    let project = DockerProject::new("watch");
    let dir = TempDir::new("muster-watch");
    let file = support::write_compose(
        &dir,
        &format!(
            r#"
services:
  db:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo db started; exec sleep 100000"]
  web:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "echo web says hello; exec sleep 100000"]
    depends_on: [db]
    deploy:
      replicas: 2
      resources:
        limits:
          memory: 32M
"#
        ),
    );
    let port = support::free_port();
    let muster = || {
        Muster::new()
            .dir(dir.path())
            .stack(&file, &project.name, port)
    };
    let _serve = muster().spawn_quiet(&["--telemetry-interval", "300ms", "up", "--serve"]);

    let tmux = Tmux::new("watch");
    let mut watch = muster();
    watch.args(["status", "--watch", "--interval", "300ms"]);
    tmux.session("big", 120, 40, &script(dir.path(), "big", &watch));

    // Every service, live from the stack's own muster, with its state
    // changes.
    let screen = tmux.wait_for(
        "big",
        &[
            "2/2 required ready",
            "live from the muster at",
            "web starting -> ready",
        ],
    );
    let row = |screen: &str, name: &str| {
        screen
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row:\n{screen}"))
            .to_string()
    };
    assert!(row(&screen, "db").contains("ready"), "{screen}");
    assert!(row(&screen, "web").contains("ready"), "{screen}");
    assert!(
        screen.contains("SERVICE") && screen.contains("GRACE LEFT"),
        "{screen}"
    );
    // web's two replicas one by one under it, with CPU and memory against
    // their limit once the muster sampled them twice.
    let web_1 = format!("  └ {}-web-1", project.name);
    let web_2 = format!("  └ {}-web-2", project.name);
    tmux.wait_for("big", &[&web_1, &web_2, "CPU", "MEMORY"]);
    let sampled = |screen: &str| {
        [web_1.as_str(), web_2.as_str()].iter().all(|replica| {
            let line = row(screen, replica);
            line.contains("running") && line.contains("/ 32 MiB") && line.contains('%')
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut screen = tmux.capture("big");
    while !sampled(&screen) {
        assert!(
            Instant::now() < deadline,
            "no CPU and memory per replica:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
        screen = tmux.capture("big");
    }
    let at = |name: &str| screen.lines().position(|l| l.starts_with(name));
    assert!(
        at("web ") < at(&web_1) && at(&web_1) < at(&web_2),
        "{screen}"
    );

    // f filters by state (ready is the only one present), and again back to all.
    tmux.keys("big", &["f"]);
    tmux.wait_for("big", &["filter: ready"]);
    tmux.keys("big", &["f"]);
    tmux.wait_for("big", &["filter: all"]);

    // Down + Enter: web's logs, read through the Engine API; Esc back.
    tmux.keys("big", &["Down", "Enter"]);
    let logs = tmux.wait_for("big", &["logs of web", "web-1  | web says hello"]);
    assert!(!logs.contains("db started"), "{logs}");
    tmux.keys("big", &["Escape"]);
    tmux.wait_for("big", &["Enter/l logs"]);

    // q quits with 0 and restores the terminal (no alternate screen left).
    tmux.keys("big", &["q"]);
    let screen = tmux.wait_for("big", &["muster exited 0"]);
    assert!(
        !screen.contains("SERVICE"),
        "the view stayed on screen:\n{screen}"
    );
    let alternate = tmux.run(&["display", "-p", "-t", "big", "#{alternate_on}"]);
    assert_eq!(String::from_utf8_lossy(&alternate.stdout).trim(), "0");

    // muster's own log lines do not draw over the view: the newest is in the
    // status bar, and all are printed once the terminal is restored. (No
    // muster on this address: each poll logs `probing directly` at debug.)
    let mut chatty = Muster::new().dir(dir.path());
    chatty
        .arg("-f")
        .arg(&file)
        .args(["-p", &format!("{}none", project.name)])
        .args(["--listen", &format!("127.0.0.1:{}", support::free_port())])
        .args([
            "--log",
            "muster=debug",
            "status",
            "--watch",
            "--interval",
            "300ms",
        ]);
    tmux.session("chatty", 120, 30, &script(dir.path(), "chatty", &chatty));
    let screen = tmux.wait_for("chatty", &["probed directly", "Enter/l logs · "]);
    let lines: Vec<&str> = screen.lines().collect();
    let bar = lines
        .iter()
        .rposition(|l| l.contains("Enter/l logs"))
        .unwrap();
    assert!(lines[bar].contains("DEBUG"), "{screen}");
    assert!(
        lines[..bar].iter().all(|l| !l.contains("DEBUG")),
        "log lines drawn over the view:\n{screen}"
    );
    tmux.keys("chatty", &["q"]);
    let screen = tmux.wait_for("chatty", &["muster exited 0"]);
    assert!(
        screen.contains("DEBUG") && screen.contains("probing directly"),
        "{screen}"
    );

    // A terminal too small: a message, not a panic; Ctrl-C quits.
    tmux.session("small", 40, 8, &script(dir.path(), "small", &watch));
    let screen = tmux.wait_for("small", &["terminal too small: 40x8"]);
    assert!(screen.contains("60x12"), "{screen}");
    tmux.keys("small", &["C-c"]);
    tmux.wait_for("small", &["muster exited 0"]);

    // Over a pipe: one table per interval.
    let mut piped = muster();
    piped
        .args(["status", "--watch", "--interval", "200ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = piped.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let _piped = KillOnDrop(child);
    let rx = support::stdout_lines(stdout);
    let mut tables = 0;
    let mut seen = Vec::new();
    while tables < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no second table over a pipe: {seen:#?}"));
        if line.starts_with("--- ") {
            tables += 1;
            assert!(line.contains(&project.name), "{line}");
        }
        assert!(!line.contains('\x1b'), "escape codes over a pipe: {line:?}");
        seen.push(line);
    }
    assert!(
        seen.iter()
            .any(|l| l.starts_with("web ") && l.contains("ready")),
        "{seen:#?}"
    );
}
