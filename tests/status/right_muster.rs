//! The right muster (issue 18 item 1): two stacks' musters side by side on
//! derived addresses, each found by its own project's `status` / `check`,
//! neither believed by the other project, and a second muster for the same
//! project refused with the first one's pid and address.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, text, KillOnDrop, Muster, TempDir};
use muster::health::client::{self, Wanted};
use muster::health::identity::derived_ports;

/// A one-service compose project whose probe never passes (nothing is
/// started: `serve` supervises what runs, here nothing).
fn write_project(dir: &Path, name: &str) -> String {
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "name: {name}\nservices:\n  web:\n    image: muster-test/busybox:1\n    x-muster:\n      probes:\n        - tcp: {{ address: \"127.0.0.1:{}\" }}\n",
            free_port()
        ),
    )
    .unwrap();
    file.display().to_string()
}

/// muster in `dir` with no MUSTER_LISTEN (the derived rule applies) and one
/// state file shared by every muster of the test (where the lock lives).
fn muster(dir: &Path, state: &Path) -> Muster {
    let mut m = Muster::new()
        .dir(dir)
        .state_file(state)
        .unset("MUSTER_LISTEN");
    m.env("MUSTER_PROBE_ADDRESS", "network");
    m
}

fn serve(dir: &Path, state: &Path) -> KillOnDrop {
    let mut m = muster(dir, state);
    m.arg("serve").stdout(Stdio::null()).stderr(Stdio::null());
    KillOnDrop(m.spawn().expect("start muster serve"))
}

/// Polls `check --self` in `dir` until this project's muster answers.
fn wait_ready(dir: &Path, state: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = muster(dir, state).run(&["check", "--self", "--timeout", "1s"]);
        if out.status.success() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("muster serve exited early ({status})");
        }
        assert!(
            Instant::now() < deadline,
            "no muster answered: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_projects_side_by_side_each_reach_their_own_muster() {
    let ns = format!("mt{}", std::process::id());
    let (a, b) = (format!("{ns}right-a"), format!("{ns}right-b"));
    let root = TempDir::new("muster-right");
    let state = root.path().join("state.json");
    let (dir_a, dir_b) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let file_a = write_project(&dir_a, &a);
    write_project(&dir_b, &b);

    let mut serve_a = serve(&dir_a, &state);
    let mut serve_b = serve(&dir_b, &state);
    wait_ready(&dir_a, &state, &mut serve_a.0);
    wait_ready(&dir_b, &state, &mut serve_b.0);

    // Each muster sits on one of its own project's derived ports and says
    // which stack it is, in headers and in /status.
    let find = |project: &str| {
        let wanted = Wanted {
            project: Some(project.to_string()),
            namespace: ns.clone(),
        };
        let lookup = client::find(None, &wanted, "/status", Duration::from_secs(2)).unwrap();
        lookup
            .found
            .expect("the project's muster on a derived port")
    };
    let (addr_a, reply_a) = find(&a);
    let (addr_b, _) = find(&b);
    assert_ne!(addr_a, addr_b);
    let port_a: u16 = addr_a.rsplit(':').next().unwrap().parse().unwrap();
    assert!(derived_ports(&a, &ns).contains(&port_a), "{addr_a}");
    let id = reply_a.identity().expect("X-Muster-* headers");
    assert_eq!(
        (id.project.as_str(), id.namespace.as_str()),
        (a.as_str(), ns.as_str())
    );
    assert_eq!(id.pid, serve_a.0.id());
    let body: serde_json::Value = serde_json::from_slice(&reply_a.body).unwrap();
    assert_eq!(body["muster"]["project"], a.as_str());
    assert_eq!(body["muster"]["listen"], addr_a.as_str());
    assert_eq!(body["muster"]["compose_files"][0], file_a.as_str());

    // `muster status` in each project reads its own muster.
    let out = muster(&dir_a, &state).run(&["status"]);
    assert!(
        text(&out).contains(&format!("from the muster at {addr_a}")),
        "{}",
        text(&out)
    );
    let out = muster(&dir_b, &state).run(&["status"]);
    assert!(
        text(&out).contains(&format!("from the muster at {addr_b}")),
        "{}",
        text(&out)
    );

    // Pointed at A's muster, project B does not believe it: status says so
    // and probes directly, check --service fails naming both projects.
    let out = muster(&dir_b, &state).run(&["--listen", &addr_a, "status"]);
    let all = text(&out);
    assert!(
        all.contains(&format!("the muster at {addr_a} supervises project {a:?}")),
        "{all}"
    );
    assert!(all.contains(&format!("not project {b:?}")), "{all}");
    assert!(all.contains("probed once now"), "{all}");
    let out = muster(&dir_b, &state).run(&["--listen", &addr_a, "check", "--service", "web"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("{a:?}")) && all.contains(&format!("{b:?}")),
        "{all}"
    );
    // Given explicitly and right, the address is used as is.
    let out = muster(&dir_a, &state).run(&["--listen", &addr_a, "check", "--self"]);
    assert!(out.status.success(), "{}", text(&out));

    // A second muster for project A is refused, naming the first.
    let out = muster(&dir_a, &state).run(&["serve"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("already supervised by muster"), "{all}");
    assert!(all.contains(&format!("pid {}", serve_a.0.id())), "{all}");
    assert!(all.contains(&addr_a), "{all}");
    // ... also with an address of its own.
    let listen = format!("127.0.0.1:{}", free_port());
    let out = muster(&dir_a, &state).run(&["--listen", &listen, "up", "--serve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("already supervised by muster"),
        "{}",
        text(&out)
    );
}
