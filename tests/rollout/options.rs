//! Options from the compose file on the real engine: `deploy.update_config`
//! (stop-first, failure_action pause), `x-muster-rollout` (drain, a pre-stop
//! HTTP hook), a paused rollout that `muster up` refuses to touch and
//! `muster rollout status --revert` undoes; several services rolled in
//! dependency order.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::support::rollout::*;

/// A loopback HTTP server that answers 200 and records request lines.
fn hook_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if let Some(line) = text.lines().next() {
                record.lock().unwrap().push(line.to_string());
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, seen)
}

#[test]
fn stop_first_pause_from_the_compose_file_then_revert() {
    let env = Env::new("rollpause");
    let (port, hooks) = hook_server();
    let compose = format!(
        r#"services:
  web:
    image: {V1}
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
      interval: 200ms
      timeout: 2s
      retries: 3
    deploy:
      replicas: 2
      update_config:
        order: stop-first
        failure_action: pause
        monitor: 1s
      rollback_config:
        parallelism: 2
    x-muster-rollout:
      drain: 500ms
      pre_stop:
        http: "POST http://127.0.0.1:{port}/drain/{{container}}"
"#
    );
    env.write("compose.yaml", &compose);
    let files = ["compose.yaml"];
    env.up(&files);
    let client = env.client("web");

    let out = env.run(&files, &["rollout", "web", "--image", BAD]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("stop-first, 1 at a time, monitor 1s, on failure pause"),
        "{text}"
    );
    assert!(text.contains("max unavailable 1, drain 500ms"), "{text}");
    assert!(
        text.contains("restoring 1 slot(s) with revision 1"),
        "{text}"
    );
    assert!(text.contains("revision 2 paused"), "{text}");
    let web1 = format!("{}-web-1", env.project.name);
    assert_eq!(
        hooks.lock().unwrap().clone(),
        vec![format!("POST /drain/{web1} HTTP/1.1")],
        "the pre-stop hook was called once, for the first old container"
    );
    let during = env.containers("web");
    assert_eq!(during.len(), 2, "{during:?}");
    assert!(
        during.iter().all(|c| c.image == V1 && c.running),
        "{during:?}"
    );

    // Paused: reported, not resumed by itself; `muster up` refuses to undo half of it.
    let out = env.run(&files, &["rollout", "status", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("paused"), "{}", stdout(&out));
    let out = env.run(&files, &["up", "--wait-timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is paused"), "{}", stderr(&out));

    // --revert returns it to revision 1.
    let out = env.run(&files, &["rollout", "status", "web", "--revert"]);
    assert!(out.status.success(), "revert failed");
    assert!(
        stdout(&out).contains("revision 2 rolled_back"),
        "{}",
        stdout(&out)
    );
    let polls = client.stop();
    // stop-first with max_unavailable 1: one of the two may be down; no request fails.
    assert_polls(&polls, 1, 2);
    assert!(polls.iter().all(|p| p.body == "v1"), "{polls:?}");
    let h = history(&env, &files, "web");
    assert_eq!(h["revisions"][0]["outcome"], "rolled_back");
    let out = env.run(&files, &["up", "--wait-timeout", "30s"]);
    assert!(out.status.success(), "up after the revert");
}

#[test]
fn several_services_roll_in_dependency_order() {
    let env = Env::new("rollorder");
    // api depends on db; named api first, rolled db first.
    let compose = format!(
        "services:\n  db:\n    image: {V1}\n    stop_grace_period: 1s\n  api:\n    image: {V1}\n    stop_grace_period: 1s\n    depends_on: [db]\n"
    );
    env.write("compose.yaml", &compose);
    let files = ["compose.yaml"];
    env.up(&files);
    let out = env.run(
        &files,
        &[
            "rollout",
            "api",
            "db",
            "--image",
            &format!("api={V2}"),
            "--image",
            &format!("db={V2}"),
            "--env",
            "LEVEL=2",
            "--monitor",
            "500ms",
            "--drain",
            "200ms",
        ],
    );
    assert!(out.status.success());
    let text = stdout(&out);
    let plan_of = |service: &str| {
        text.lines()
            .position(|l| l.starts_with(service) && l.contains("rollout to revision 2"))
            .unwrap_or_else(|| panic!("no plan line for {service}: {text}"))
    };
    assert!(
        plan_of("db") < plan_of("api"),
        "db must roll before api: {text}"
    );
    for service in ["db", "api"] {
        let c = env.containers(service);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].image, V2);
        let env_out = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{json .Config.Env}}", &c[0].id])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&env_out.stdout).contains("LEVEL=2"));
    }
}
