//! A service whose container exits by itself under `restart: "no"`: muster
//! says `failed` with an alert, and nothing a probe answers afterwards moves
//! it (issue #15 item 6: it went failed -> ready -> unready, on the probe's
//! counters from before the exit).

use crate::support::BUSYBOX_IMAGE;
use std::time::Duration;

#[test]
fn an_exit_under_restart_no_stays_failed_with_an_alert() {
    let stack = crate::serve(
        "exitno",
        &format!(
            r#"  web:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "touch /tmp/up; sleep 4; exit 3"]
    restart: "no"
    x-muster:
      probes:
        - exec: {{ command: ["test", "-f", "/tmp/up"] }}
          period: 200ms
"#
        ),
    );
    let mut seen_ready = false;
    let failed = stack.wait("web failed", |v| {
        let web = &v["services"]["web"];
        seen_ready |= web["state"] == "ready";
        web["state"] == "failed"
    });
    assert!(seen_ready, "web was never ready before it exited");
    let web = &failed["services"]["web"];
    assert!(
        web["reason"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{web:#}"
    );
    // The alert may follow the state by one healer pass.
    stack.wait("alerted", |v| {
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("exited with code 3"))
    });
    // Probes go on failing against the dead container: it stays failed,
    // with no transition after the exit.
    std::thread::sleep(Duration::from_secs(2));
    let v = stack.status().expect("/status");
    let web = &v["services"]["web"];
    assert_eq!(web["state"], "failed", "{web:#}");
    let last = web["transitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["to"], "failed", "{web:#}");
    drop(stack);
}
