//! A start-first rollout while `muster serve` supervises the stack (issue
//! #15 item 5): `/readyz/web` answered 503 "failed: starting: container
//! started" at each new batch, because every new container's start reset
//! the service to `starting`, and `/status` kept the old image. The
//! supervisor now judges a service by the containers that serve: a new
//! replica joining beside running ones is not a restart of the service, an
//! old one stopped by the rollout is not a failure, and the image shown is
//! the one the running containers share.

use crate::support::rollout::*;
use crate::support::{free_port, http_get, KillOnDrop};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_start_first_rollout_under_serve_keeps_readyz_and_shows_the_new_image() {
    let env = Env::new("rollserve");
    env.write("compose.yaml", &web_compose(V1, 3, true));
    // muster's own probe (the probe runner's path, where each new
    // container used to reset the service to `starting`): an exec probe,
    // which runs inside a container of the service, so that `up` and `serve`
    // on the host can run it too.
    env.write(
        "probes.yaml",
        "services:\n  web:\n    x-muster:\n      probes:\n        - exec: { command: [\"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/healthz\"] }\n          period: 200ms\n",
    );
    let files = ["compose.yaml", "probes.yaml"];
    env.up(&files);
    let listen = free_port();
    let serve = env
        .muster(&files)
        .args(["--listen", &format!("127.0.0.1:{listen}"), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start muster serve");
    let _serve = KillOnDrop(serve);
    let status = || -> Option<serde_json::Value> {
        let (code, body) = http_get(listen, "/status")?;
        (code == 200).then(|| serde_json::from_str(&body).unwrap())
    };
    let wait = |what: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = status() {
                if pred(&v) {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "never {what}: {:#?}", status());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let running = |v: &serde_json::Value, image: &str| {
        v["services"]["web"]["replicas"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter(|c| c["state"] == "running" && c["image"] == image)
                    .count()
            })
            .unwrap_or(0)
    };
    wait("web ready on 3 v1 replicas", &|v| {
        v["services"]["web"]["state"] == "ready" && running(v, V1) == 3
    });

    // Poll /readyz/web through the whole rollout.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new((0u32, Vec::<String>::new())));
    let poller = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some((code, body)) = http_get(listen, "/readyz/web") {
                    let mut seen = seen.lock().unwrap();
                    seen.0 += 1;
                    if code != 200 {
                        seen.1.push(format!("{code}: {body}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = env.rollout_web(&files, V2);
    assert!(out.status.success(), "rollout failed");
    let v = wait("web shown on 3 v2 replicas", &|v| {
        let web = &v["services"]["web"];
        web["image"] == V2 && running(v, V2) == 3 && web["replicas"].as_array().unwrap().len() == 3
    });
    // A few more polls after the last old container left.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    let (polls, bad) = seen.lock().unwrap().clone();
    assert!(polls > 20, "only {polls} polls of /readyz/web");
    assert!(
        bad.is_empty(),
        "/readyz/web not ready during the rollout: {bad:?}"
    );
    let web = &v["services"]["web"];
    assert_eq!(web["state"], "ready", "{web:#}");
    assert!(web["heal"]["alert"].is_null(), "{web:#}");
    let new: Vec<String> = env.containers("web").into_iter().map(|c| c.id).collect();
    let mut shown: Vec<String> = web["container_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    shown.sort();
    let mut new = new;
    new.sort();
    assert_eq!(shown, new, "{web:#}");
}
