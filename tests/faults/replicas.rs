//! One replica of several going down (issue #15 item 6): `docker kill` of one
//! of three replicas left the service "ready" with no alert and the dead
//! container listed as if it ran; one replica's process exiting failed the
//! whole service for about a second. Now the service stays ready on the
//! replicas that serve, is marked degraded naming the container, raises an
//! alert, shows each container in `/status`, and the dead replica is
//! healed per the restart policy (by the engine, or by muster within the
//! budget when the engine will not), or left down under `restart: no`.

use crate::support::{docker, http_get, BUSYBOX_IMAGE};
use crate::Stack;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A replica that runs until `/tmp/die` appears, then exits 7 (and clears
/// the mark first, so that a restart by the engine runs again).
const REPLICA_COMMAND: &str = r#"["sh", "-c", "rm -f /tmp/die; touch /tmp/up; while [ ! -f /tmp/die ]; do sleep 0.1; done; exit 7"]"#;

/// [`crate::serve`], once every listed service is ready with all its
/// replicas running.
fn serve(test: &str, services: &str, ready: &[(&str, usize)]) -> Stack {
    let stack = crate::serve(test, services);
    for (service, replicas) in ready {
        stack.wait(
            &format!("{service} ready with {replicas} running replicas"),
            |v| {
                let s = &v["services"][service];
                s["state"] == "ready" && running(s) == *replicas
            },
        );
    }
    stack
}

fn running(service: &Value) -> usize {
    service["replicas"]
        .as_array()
        .map(|r| r.iter().filter(|c| c["state"] == "running").count())
        .unwrap_or(0)
}

fn replica<'a>(service: &'a Value, name: &str) -> &'a Value {
    service["replicas"]
        .as_array()
        .and_then(|r| r.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

impl Stack {
    /// Polls `/readyz/SERVICE` and the service's state until dropped; what
    /// it saw that was not ready.
    fn watch_ready(&self, service: &str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let bad = Arc::new(Mutex::new(Vec::new()));
        let (listen, service) = (self.listen, service.to_string());
        let thread = {
            let (stop, bad) = (stop.clone(), bad.clone());
            std::thread::spawn(move || {
                let mut polls = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    if let Some((code, body)) = http_get(listen, &format!("/readyz/{service}")) {
                        polls += 1;
                        if code != 200 {
                            bad.lock().unwrap().push(format!("/readyz {code}: {body}"));
                        }
                    }
                    if let Some((200, body)) = http_get(listen, "/status") {
                        let v: Value = serde_json::from_str(&body).unwrap();
                        let state = &v["services"][&service]["state"];
                        if state != "ready" {
                            bad.lock().unwrap().push(format!("state {state}"));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                polls
            })
        };
        Watch {
            stop,
            bad,
            thread: Some(thread),
        }
    }
}

struct Watch {
    stop: Arc<AtomicBool>,
    bad: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Watch {
    /// Stops polling; panics with what was seen unless the service was
    /// ready at every poll.
    fn assert_always_ready(mut self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let polls = self.thread.take().unwrap().join().unwrap();
        assert!(polls > 10, "only {polls} polls of /readyz during {what}");
        let bad = self.bad.lock().unwrap();
        assert!(bad.is_empty(), "not ready during {what}: {bad:?}");
    }
}

#[test]
fn a_killed_replica_degrades_the_service_and_muster_starts_it_again() {
    let stack = serve(
        "replkill",
        &format!(
            r#"  web:
    image: {BUSYBOX_IMAGE}
    command: {REPLICA_COMMAND}
    restart: always
    deploy: {{ replicas: 3 }}
    x-muster:
      probes:
        - exec: {{ command: ["test", "-f", "/tmp/up"] }}
          period: 200ms
      restart: {{ backoff: 1s }}
"#
        ),
        &[("web", 3)],
    );
    let victim = stack.container("web", 2);
    let watch = stack.watch_ready("web");
    // The engine does not restart a container killed by hand.
    docker(&["kill", &victim]);
    let v = stack.wait("web degraded by the killed replica", |v| {
        let web = &v["services"]["web"];
        replica(web, &victim)["state"] == "exited"
            && web["degraded"] == true
            && web["degraded_by"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x.as_str().unwrap().contains(&victim)))
            && web["heal"]["alert"]
                .as_str()
                .is_some_and(|a| a.contains(&victim))
    });
    let web = &v["services"]["web"];
    assert_eq!(replica(web, &victim)["exit_code"], 137, "{web:#}");
    assert_eq!(running(web), 2, "{web:#}");
    // Healed: muster starts it again after the backoff, within its budget.
    let v = stack.wait("the killed replica running again", |v| {
        let web = &v["services"]["web"];
        running(web) == 3 && web["heal"]["alert"].is_null() && web["degraded"] == false
    });
    watch.assert_always_ready("the kill of one replica and its restart");
    let web = &v["services"]["web"];
    assert_eq!(web["heal"]["muster_restarts"], 1, "{web:#}");
    assert_eq!(web["heal"]["last_restart"]["by"], "muster", "{web:#}");
    drop(stack);
}

#[test]
fn a_replica_that_exits_does_not_fail_its_service() {
    let stack = serve(
        "replexit",
        &format!(
            r#"  web:
    image: {BUSYBOX_IMAGE}
    command: {REPLICA_COMMAND}
    restart: always
    deploy: {{ replicas: 3 }}
    x-muster:
      probes:
        - exec: {{ command: ["test", "-f", "/tmp/up"] }}
          period: 200ms
  worker:
    image: {BUSYBOX_IMAGE}
    command: {REPLICA_COMMAND}
    restart: "no"
    deploy: {{ replicas: 2 }}
"#
        ),
        &[("web", 3), ("worker", 2)],
    );
    // restart: always: the engine restarts it; the service never leaves ready.
    let before = stack.status().unwrap()["services"]["web"]["transitions"].clone();
    let watch = stack.watch_ready("web");
    let web1 = stack.container("web", 1);
    docker(&["exec", &web1, "touch", "/tmp/die"]);
    let v = stack.wait("web's replica restarted by the engine", |v| {
        let web = &v["services"]["web"];
        web["heal"]["engine_restarts"].as_u64() >= Some(1) && running(web) == 3
    });
    let web = &v["services"]["web"];
    assert_eq!(
        web["heal"]["last_exit"]["container"],
        web1.as_str(),
        "{web:#}"
    );
    assert_eq!(web["heal"]["last_exit"]["code"], 7, "{web:#}");
    // Give a late wrong transition the time to show up.
    std::thread::sleep(Duration::from_secs(2));
    watch.assert_always_ready("the exit of one replica under restart: always");
    let v = stack.status().unwrap();
    let web = &v["services"]["web"];
    assert!(web["heal"]["alert"].is_null(), "{web:#}");
    assert_eq!(web["transitions"], before, "no state change: {web:#}");

    // restart: "no": the replica stays down, shown exited, with an alert
    // naming it; the service still serves on the other one.
    let watch = stack.watch_ready("worker");
    let worker2 = stack.container("worker", 2);
    docker(&["exec", &worker2, "touch", "/tmp/die"]);
    let v = stack.wait("worker's replica shown exited with an alert", |v| {
        let w = &v["services"]["worker"];
        replica(w, &worker2)["state"] == "exited"
            && w["heal"]["alert"]
                .as_str()
                .is_some_and(|a| a.contains(&worker2) && a.contains("`no`"))
    });
    std::thread::sleep(Duration::from_secs(2));
    watch.assert_always_ready("the exit of one replica under restart: no");
    let w = &v["services"]["worker"];
    assert_eq!(w["state"], "ready", "{w:#}");
    assert_eq!(w["degraded"], true, "{w:#}");
    assert_eq!(replica(w, &worker2)["exit_code"], 7, "{w:#}");
    assert_eq!(running(w), 1, "{w:#}");
    assert!(
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains(&worker2)),
        "{v:#}"
    );
    drop(stack);
}
