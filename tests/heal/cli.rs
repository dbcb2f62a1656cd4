//! Healing through the `muster` binary: `muster up --serve` on a real engine
//! restarts a hanging service within its budget, then reports it `failed`
//! with an alert in /status, /readyz?verbose and `muster status`, marks its
//! dependent degraded, runs the post-restart hook and POSTs to the webhook.
//! Bad restart settings and webhook URLs are config errors naming the file,
//! line and field.

use crate::support::{
    self, http_get, webhook::Webhook, DockerProject, KillOnDrop, Muster, RedisServer, TempDir,
    BUSYBOX_IMAGE,
};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn muster(dir: &TempDir) -> Muster {
    Muster::new()
        .dir(dir.path())
        .state_file(dir.path().join("state.json"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run muster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serve_restarts_within_the_budget_then_alerts_everywhere() {
    support::ensure_test_images();
    let project = DockerProject::new("healcli");
    let redis = RedisServer::start();
    let hook = Webhook::start(0).await;
    let dir = TempDir::new("muster-healcli");
    let listen = support::free_port();
    let hook_log = dir.path().join("hook.log");
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            r#"
services:
  hang:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "exec sleep 100000"]
    stop_grace_period: 1s
    x-muster:
      probes:
        - exec: {{ command: ["test", "-f", "/tmp/ready"] }}
          period: 200ms
          failure_threshold: 2
      grace: 1s
      restart:
        backoff: 200ms
        budget: 1
        window: 10m
        hook: 'echo "$$MUSTER_SERVICE $$MUSTER_RESTARTS $$MUSTER_CONTAINER $$MUSTER_REASON" >> {}'
        hook_timeout: 5s
  app:
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    depends_on:
      hang: {{ condition: service_started }}
"#,
            hook_log.display()
        ),
    )
    .unwrap();
    // A password in the webhook URL goes out as basic auth, never into logs.
    let url = hook.url.replace("http://", "http://ops:s3cret@");
    let log_path = dir.path().join("muster.log");
    let child = muster(&dir)
        .args(["-f"])
        .arg(&file)
        .args(["-p", &project.name, "--listen"])
        .arg(format!("127.0.0.1:{listen}"))
        .args(["--webhook-url", &url, "--redis-url", &redis.url()])
        .args(["--log", "info", "up", "--serve"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);

    // One restart, then failed with an alert.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status: serde_json::Value = loop {
        if let Some((200, body)) = http_get(listen, "/status") {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if v["services"]["hang"]["state"] == "failed"
                && !v["alerts"].as_array().unwrap().is_empty()
            {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "hang never failed: {:?}",
            http_get(listen, "/status")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let hang = &status["services"]["hang"];
    assert_eq!(hang["heal"]["muster_restarts"], 1, "{hang:#}");
    assert_eq!(hang["heal"]["budget"], 1);
    assert!(hang["heal"]["alert"]
        .as_str()
        .unwrap()
        .contains("restart budget exhausted: 1 restarts in 10m"));
    assert!(status["alerts"][0]
        .as_str()
        .unwrap()
        .starts_with("hang: restart budget exhausted"));
    assert_eq!(status["degraded"], serde_json::json!(["app"]));
    assert_eq!(
        status["services"]["app"]["degraded_by"],
        serde_json::json!(["hang (failed)"])
    );

    let (code, verbose) = http_get(listen, "/readyz?verbose").unwrap();
    assert_eq!(code, 503);
    assert!(
        verbose.contains("[-]hang failed: failed: restart budget exhausted"),
        "{verbose}"
    );
    assert!(
        verbose.contains("[+]app ok (degraded: hang (failed))"),
        "{verbose}"
    );

    // `muster status` asks the running muster of the same project (`-p`, as
    // `up` was given): a table with the alert, and JSON.
    let out = run(muster(&dir).args([
        "-p",
        &project.name,
        "--listen",
        &format!("127.0.0.1:{listen}"),
        "status",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("ALERT hang: restart budget exhausted"),
        "{text}"
    );
    let app_row = text.lines().find(|l| l.starts_with("app")).unwrap();
    assert!(
        app_row.contains("ready (degraded)") && app_row.contains("[degraded: hang (failed)]"),
        "{app_row}"
    );
    let hang_row = text.lines().find(|l| l.starts_with("hang")).unwrap();
    assert!(hang_row.contains("[restarts: 1, budget 1/1]"), "{hang_row}");
    let out = run(muster(&dir).args([
        "--json",
        "-p",
        &project.name,
        "--listen",
        &format!("127.0.0.1:{listen}"),
        "status",
    ]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["services"]["hang"]["heal"]["alert"].is_string());

    // The hook ran once, with the service, count, container and reason
    // (`$$` in a compose file is a literal `$`).
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = std::fs::read_to_string(&hook_log).unwrap_or_default();
        if !log.is_empty() || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].starts_with(&format!(
            "hang 1 {}-hang-1 unready past its failure threshold",
            project.name
        )),
        "{log}"
    );

    // The webhook got the restart and the failure.
    hook.wait_for("restart and failed", Duration::from_secs(30), |got| {
        got.iter().any(|v| v["event"] == "restart") && got.iter().any(|v| v["event"] == "failed")
    })
    .await;
    let restart = &hook.of("hang", "restart")[0];
    assert_eq!(restart["project"], project.name);
    assert_eq!(restart["attempt"], 1);
    assert_eq!(restart["budget"]["limit"], 1);
    assert!(hook
        .requests()
        .iter()
        .all(|(_, _, auth)| auth.as_deref() == Some("Basic b3BzOnMzY3JldA==")));

    // The restart and the failure are in the logs; the password is not.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("restarting the service's containers"), "{log}");
    assert!(log.contains("restart budget exhausted"), "{log}");
    assert!(!log.contains("s3cret"), "password in the logs: {log}");
    // `up` and the healer followed one engine watcher: one event stream.
    assert_eq!(
        log.matches("engine watcher started").count(),
        1,
        "up and the healer must share one engine watcher: {log}"
    );
}

fn config_error(dir: &TempDir, compose: &str) -> String {
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, compose).unwrap();
    let out = run(muster(dir).arg("-f").arg(&file).arg("config"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_restart_settings_name_the_file_line_and_field() {
    let dir = TempDir::new("muster-healbad");
    let compose = |restart: &str| {
        format!("services:\n  api:\n    image: x\n    x-muster:\n      restart: {restart}\n")
    };
    let e = config_error(&dir, &compose("{ backoff: 10s, max_backoff: 1s }"));
    assert!(
        e.contains("compose.yaml:5")
            && e.contains("services.api.x-muster.restart")
            && e.contains("restart.max_backoff (1s) must not be below restart.backoff (10s)"),
        "{e}"
    );
    let e = config_error(&dir, &compose("{ backof: 1s }"));
    assert!(
        e.contains("compose.yaml:5") && e.contains("unknown field `backof`"),
        "{e}"
    );
    let e = config_error(&dir, &compose("{ budget: lots }"));
    assert!(e.contains("restart.budget") && e.contains("lots"), "{e}");
    let e = config_error(&dir, &compose("{ window: soon }"));
    assert!(e.contains("restart.window") && e.contains("soon"), "{e}");
    let e = config_error(&dir, &compose("{ hook: [] }"));
    assert!(e.contains("restart.hook"), "{e}");
    let e = config_error(
        &dir,
        "services:\n  api:\n    image: x\n    x-muster:\n      restrat: {}\n",
    );
    assert!(e.contains("did you mean `restart`"), "{e}");

    // The same block in config/muster.yaml.
    let config = dir.path().join("muster.yaml");
    std::fs::write(
        &config,
        "services:\n  api:\n    restart:\n      window: 0s\n",
    )
    .unwrap();
    let out = run(muster(&dir).arg("--config").arg(&config).arg("config"));
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        e.contains("muster.yaml") && e.contains("restart.window") && e.contains("line 4"),
        "{e}"
    );
    // A good one is accepted and printed back by `muster config`.
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  api:\n    image: x\n    x-muster:\n      restart: { backoff: 2s, budget: 3, hook: echo hi }\n",
    )
    .unwrap();
    let out = run(muster(&dir).arg("-f").arg(&file).args(["--json", "config"]));
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["services"]["api"]["x-muster"]["restart"];
    assert_eq!(r["backoff"], "2s");
    assert_eq!(r["budget"], 3);
    assert_eq!(r["max_backoff"], "1m0s");
    assert_eq!(r["hook"], "echo hi");
}

#[test]
fn bad_webhook_urls_name_where_they_were_set() {
    let dir = TempDir::new("muster-healurl");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, "services:\n  api:\n    image: x\n").unwrap();
    let config = dir.path().join("muster.yaml");
    // `muster config` with the given environment (and config file, when
    // `with_config`): exits 1, returns stderr.
    let refused = |env: &[(&str, &std::path::Path)], with_config: bool| {
        let mut cmd = muster(&dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if with_config {
            cmd.arg("--config").arg(&config);
        }
        let out = run(cmd.arg("-f").arg(&file).arg("config"));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    std::fs::write(&config, "webhook_url: ftp://ops:s3cret@hooks.example/x\n").unwrap();
    let e = refused(&[], true);
    assert!(
        e.contains("muster.yaml: webhook_url") && e.contains("ftp"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "password leaked: {e}");
    // A CA file that is not there, named where it was set.
    std::fs::write(
        &config,
        "webhook_url: https://hooks.example/x\nwebhook_ca_file: /nonexistent/ca.pem\n",
    )
    .unwrap();
    let e = refused(&[], true);
    assert!(
        e.contains("muster.yaml: webhook_ca_file") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
    let plain = std::path::Path::new("http://127.0.0.1:9/hook");
    let e = refused(
        &[
            ("MUSTER_WEBHOOK_URL", plain),
            ("MUSTER_WEBHOOK_CA_FILE", &config),
        ],
        false,
    );
    assert!(
        e.contains("MUSTER_WEBHOOK_CA_FILE: webhook_ca_file") && e.contains("http://"),
        "{e}"
    );
    let e = refused(
        &[(
            "MUSTER_WEBHOOK_URL",
            std::path::Path::new("hooks.example/x"),
        )],
        false,
    );
    assert!(e.contains("MUSTER_WEBHOOK_URL: webhook_url"), "{e}");
    // A good one from the environment is accepted.
    let out = run(muster(&dir)
        .env("MUSTER_WEBHOOK_URL", plain)
        .arg("-f")
        .arg(&file)
        .arg("config"));
    assert!(out.status.success(), "{out:?}");
}
