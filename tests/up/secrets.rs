//! `secrets:` and `configs:` on the real engine, as Docker Compose places
//! them without Swarm (docker/compose pkg/compose/secrets.go, create.go): a
//! `file:` secret bind-mounted read-only at /run/secrets/<name>; one from
//! `environment:` (and a config from `content:`) written into the container
//! before it starts, with its target, mode, uid and gid. Also the memory, CPU,
//! pids, expose and devices keys as the engine stores them.

use super::{exec, inspect_full, load_compose, up_compose, up_refused};
use crate::support::{self, DockerProject, TempDir, BUSYBOX_IMAGE};
use muster::engine::Engine;

const TOKEN: &str = "env-token-Zq81";

fn compose_file() -> String {
    format!(
        r#"services:
  app:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "sleep 3600"]
    stop_grace_period: 1s
    secrets:
      - token
      - envtok
      - source: envtok
        target: /etc/envtok
        uid: "1000"
        gid: "1001"
        mode: 0440
    configs:
      - source: conf
        target: /etc/app.conf
    mem_limit: 64m
    memswap_limit: 128m
    cpus: 0.5
    cpu_shares: 512
    pids_limit: 50
    oom_score_adj: 100
    expose: ["3000", "8000-8001/udp"]
    devices: ["/dev/null:/dev/mynull:rw"]
secrets:
  token:
    file: ./token.txt
  envtok:
    environment: ENV_TOKEN
configs:
  conf:
    content: |
      hello=world
"#
    )
}

/// The `./token.txt` the compose file's `token` secret reads, in `dir`.
fn write_token(dir: &TempDir) {
    std::fs::write(dir.path().join("token.txt"), "file-token-7Yx").expect("write token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_configs_are_in_the_container_with_their_mode_owner_and_content() {
    support::ensure_test_images();
    let engine = Engine::connect().await.expect("docker engine");
    let guard = DockerProject::new("secrets");
    let dir = TempDir::new("muster-secrets");
    write_token(&dir);
    let name = up_compose(
        &engine,
        &guard,
        &dir,
        &compose_file(),
        &[("ENV_TOKEN", TOKEN)],
    )
    .await;

    // file: bind-mounted read-only at /run/secrets/<name>.
    assert_eq!(exec(&name, "cat /run/secrets/token"), "file-token-7Yx");
    assert!(
        exec(&name, "echo x > /run/secrets/token 2>&1 || echo refused").contains("refused"),
        "read-only"
    );
    // environment: written at its target with mode 0440, uid 1000, gid 1001.
    assert_eq!(exec(&name, "cat /etc/envtok"), TOKEN);
    assert_eq!(
        exec(&name, "stat -c '%a %u %g' /etc/envtok").trim(),
        "440 1000 1001"
    );
    // The short form: /run/secrets/<name> (a directory the engine creates), 0400 root.
    assert_eq!(exec(&name, "cat /run/secrets/envtok"), TOKEN);
    assert_eq!(
        exec(&name, "stat -c '%a %u %g' /run/secrets/envtok").trim(),
        "400 0 0"
    );
    // content: config at its target, 0444 (Compose's default for configs).
    assert_eq!(exec(&name, "cat /etc/app.conf"), "hello=world\n");
    assert_eq!(
        exec(&name, "stat -c '%a %u %g' /etc/app.conf").trim(),
        "444 0 0"
    );

    // The resource keys as the engine stored them.
    let info = inspect_full(&engine, &name).await.expect("inspect");
    let host = info.host_config.expect("host config");
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.memory_swap, Some(128 << 20));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.cpu_shares, Some(512));
    assert_eq!(host.pids_limit, Some(50));
    assert_eq!(host.oom_score_adj, Some(100));
    let device = host
        .devices
        .and_then(|d| d.into_iter().next())
        .expect("a device");
    assert_eq!(device.path_in_container.as_deref(), Some("/dev/mynull"));
    assert_eq!(device.cgroup_permissions.as_deref(), Some("rw"));
    let exposed: Vec<String> = info
        .config
        .and_then(|c| c.exposed_ports)
        .unwrap_or_default();
    for port in ["3000/tcp", "8000/udp", "8001/udp"] {
        assert!(exposed.iter().any(|e| e == port), "{port} in {exposed:?}");
    }
    // The environment secret's value is nowhere in what the engine shows.
    let env = exec(&name, "env");
    assert!(!env.contains(TOKEN), "not in the environment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_secret_variable_stops_the_service_naming_it_without_a_value() {
    support::ensure_test_images();
    let engine = Engine::connect().await.expect("docker engine");
    let guard = DockerProject::new("secrets-unset");
    let dir = TempDir::new("muster-secrets-unset");
    write_token(&dir);
    let p = load_compose(&guard.name, &dir, &compose_file(), &[]);
    let message = up_refused(&engine, &p).await;
    assert!(
        message.contains(
            "environment variable \"ENV_TOKEN\" required by secret \"envtok\" is not set"
        ),
        "{message}"
    );
}
