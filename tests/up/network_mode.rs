//! `network_mode: service:X` on the real engine (issue #18 item 4): the
//! engine stores the namespace as `container:<id>`, so when X's container
//! is recreated its dependent must be recreated too (a restart would rejoin
//! a namespace that is gone). After each recreate of X the dependent joins
//! X's new container and reaches X's server on 127.0.0.1.

use crate::support::muster::run_ok;
use crate::support::{
    self, docker_inspect as inspect, page_on_loopback, text, write_compose, DockerProject, Muster,
    TempDir, BUSYBOX_IMAGE,
};
use std::path::Path;

/// `muster up [services]` with `V` set (X's config changes with it).
fn up(dir: &TempDir, file: &Path, project: &DockerProject, version: &str, services: &[&str]) {
    let mut m = Muster::new().dir(dir.path());
    m.env("V", version)
        .arg("-f")
        .arg(file)
        .args(["-p", &project.name, "up", "--wait-timeout", "60s"])
        .args(services);
    run_ok(&mut m);
}

#[test]
fn a_service_in_xs_network_namespace_is_recreated_with_x() {
    support::ensure_test_images();
    let project = DockerProject::new("netmode");
    let dir = TempDir::new("muster-netmode");
    let file = write_compose(
        &dir,
        &format!(
            r#"
services:
  x:
    image: {BUSYBOX_IMAGE}
    environment: ["V=${{V}}"]
    stop_grace_period: 1s
    command: ["sh", "-c", "mkdir -p /www && echo x-$$V > /www/index.html && exec httpd -f -p 8080 -h /www"]
  sidecar:
    image: {BUSYBOX_IMAGE}
    network_mode: service:x
    stop_grace_period: 1s
    command: ["sleep", "100000"]
"#
        ),
    );
    let x = format!("{}-x-1", project.name);
    let sidecar = format!("{}-sidecar-1", project.name);
    let joined = || inspect(&sidecar, "{{.HostConfig.NetworkMode}}");

    up(&dir, &file, &project, "1", &[]);
    let x1 = inspect(&x, "{{.Id}}");
    let sidecar1 = inspect(&sidecar, "{{.Id}}");
    assert_eq!(joined(), format!("container:{x1}"));
    assert_eq!(page_on_loopback(&sidecar), "x-1");

    // X's config changes: `up` recreates X, and the sidecar with it.
    up(&dir, &file, &project, "2", &[]);
    let x2 = inspect(&x, "{{.Id}}");
    assert_ne!(x2, x1, "x was not recreated");
    let sidecar2 = inspect(&sidecar, "{{.Id}}");
    assert_ne!(
        sidecar2, sidecar1,
        "the sidecar was restarted, not recreated"
    );
    assert_eq!(joined(), format!("container:{x2}"));
    assert_eq!(inspect(&sidecar, "{{.State.Running}}"), "true");
    assert_eq!(page_on_loopback(&sidecar), "x-2");

    // X alone is recreated (`up x`); the next `up` finds the sidecar in a
    // namespace that is gone, though its own config is unchanged.
    up(&dir, &file, &project, "3", &["x"]);
    let x3 = inspect(&x, "{{.Id}}");
    assert_ne!(x3, x2);
    assert_eq!(
        joined(),
        format!("container:{x2}"),
        "up x touched the sidecar"
    );
    up(&dir, &file, &project, "3", &[]);
    assert_eq!(inspect(&x, "{{.Id}}"), x3, "x was recreated again");
    assert_ne!(inspect(&sidecar, "{{.Id}}"), sidecar2);
    assert_eq!(joined(), format!("container:{x3}"));
    assert_eq!(page_on_loopback(&sidecar), "x-3");

    // Nothing changed: nothing is recreated.
    let sidecar3 = inspect(&sidecar, "{{.Id}}");
    let mut m = Muster::new().dir(dir.path());
    m.env("V", "3")
        .arg("-f")
        .arg(&file)
        .args(["-p", &project.name, "up", "--wait-timeout", "60s"]);
    let out = run_ok(&mut m);
    assert_eq!(inspect(&x, "{{.Id}}"), x3, "{}", text(&out));
    assert_eq!(joined(), format!("container:{x3}"), "{}", text(&out));
    assert_eq!(inspect(&sidecar, "{{.Id}}"), sidecar3);
}
