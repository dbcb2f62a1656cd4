//! The binary in the operator's shell (issue 18 item 6): as a Docker CLI
//! plugin through the real `docker` CLI (a temporary DOCKER_CONFIG with
//! `cli-plugins/docker-muster`), bash completion run by bash itself, and the
//! man pages rendered by `man`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{text, Muster, TempDir};

fn stack() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("compose/agents.yaml")
        .display()
        .to_string()
}

/// The docker CLI with a config directory of its own whose `cli-plugins`
/// holds muster as `docker-muster`, and none of the caller's muster or
/// compose settings.
fn docker(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("docker");
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("MUSTER_") || k.starts_with("COMPOSE_") || k == "REDIS_IMAGE" {
            cmd.env_remove(&key);
        }
    }
    cmd.env("DOCKER_CONFIG", config)
        .env("HOME", config)
        .env("MUSTER_REDIS_URL", crate::support::muster::NO_REDIS)
        .args(args)
        .output()
        .expect("run the docker CLI")
}

#[test]
fn docker_muster_runs_through_the_docker_cli() {
    let dir = TempDir::new("muster-plugin");
    let plugins = dir.path().join("cli-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let plugin = plugins.join("docker-muster");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_muster"), &plugin).unwrap();

    // The handshake the docker CLI runs first.
    let out = Command::new(&plugin)
        .arg("docker-cli-plugin-metadata")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(meta["SchemaVersion"], "0.1.0");
    assert_eq!(meta["Vendor"], "muster");
    assert_eq!(meta["Version"], env!("CARGO_PKG_VERSION"));

    // docker lists it among its commands and runs it with `muster` inserted.
    let out = docker(dir.path(), &["--help"]);
    let help = text(&out);
    assert!(
        help.lines()
            .any(|l| l.trim_start().starts_with("muster*") && l.contains("Health supervisor")),
        "{help}"
    );
    let out = docker(dir.path(), &["muster", "--help"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Usage: docker muster"),
        "{}",
        text(&out)
    );

    let file = stack();
    let out = docker(dir.path(), &["muster", "-f", &file, "config", "--services"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut direct = Muster::new();
    direct.env_remove("REDIS_IMAGE");
    let direct = direct.run(&["-f", &file, "config", "--services"]);
    assert_eq!(out.stdout, direct.stdout);
    assert!(String::from_utf8_lossy(&out.stdout).contains("memory-agent"));

    // A real status run through docker: the probe's answer comes back.
    let config = dir.path().join("muster.yaml");
    std::fs::write(
        &config,
        format!(
            "services:\n  cache:\n    probes:\n      - tcp: {{ address: \"127.0.0.1:{}\" }}\n",
            crate::support::free_port()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let out = docker(
        dir.path(),
        &[
            "muster",
            "--config",
            &config,
            "--listen",
            "127.0.0.1:1",
            "status",
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("cache") && all.contains("refused"), "{all}");

    // Bad input: a usage error with docker's command name, exit 2.
    let out = docker(dir.path(), &["muster", "bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("docker muster"), "{}", text(&out));
}

#[test]
fn bash_completes_subcommands_and_flags() {
    let out = Muster::new().run(&["completions", "bash"]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = TempDir::new("muster-completions");
    let script = dir.path().join("muster.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // bash itself loads the script and asks it as a shell does on TAB: the
    // function gets the command, the word being completed and the one before.
    let complete = |words: &str, cword: usize| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; _muster muster \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new("bash")
            .args(["-c", &program])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let subs = complete("muster ro", 1);
    assert!(subs.lines().any(|l| l == "rollout"), "{subs}");
    assert!(subs.lines().any(|l| l == "rollback"), "{subs}");
    assert!(!subs.lines().any(|l| l == "status"), "{subs}");
    let flags = complete("muster up --wa", 2);
    assert!(flags.lines().any(|l| l == "--wait-timeout"), "{flags}");

    for (shell, marker) in [("zsh", "#compdef muster"), ("fish", "complete -c muster")] {
        let out = Muster::new().run(&["completions", shell]);
        assert!(out.status.success(), "{}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("wait-timeout") && script.contains("rollout"),
            "{shell}"
        );
    }
    let out = Muster::new().run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("bash"),
        "the allowed shells: {}",
        text(&out)
    );
}

#[test]
fn man_pages_render_with_man() {
    let out = Muster::new().run(&["man"]);
    assert!(out.status.success(), "{}", text(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH muster 1"), "{page}");
    let dir = TempDir::new("muster-man");
    let out = Muster::new().run(&["man", "--dir", &dir.path().display().to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    for name in [
        "muster.1",
        "muster-up.1",
        "muster-rollout-status.1",
        "muster-check.1",
    ] {
        assert!(dir.path().join(name).is_file(), "{name}");
    }
    assert!(!dir.path().join("muster-help.1").exists());
    let out = Command::new("man")
        .arg("-l")
        .arg(dir.path().join("muster-rollout-status.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("run man");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        shown.contains("muster-rollout-status") && shown.contains("--revert"),
        "{shown}"
    );
}
