//! `gpus`, `deploy.resources.reservations.devices` and `generic_resources`,
//! and `label_file`: read into the model as compose-go v2.10.1 reads them,
//! printed by `muster config --json` in its JSON shape, and refused with
//! file:line:col and field when malformed.

use std::path::Path;

use crate::support::compose::{load_dir, write_file};
use crate::support::{Muster, TempDir};
use muster::compose::{self, hash, DeviceRequest, LoadOptions, Project};

fn load(dir: &Path, text: &str) -> Result<Project, String> {
    write_file(dir, "compose.yaml", text);
    load_dir(dir, &["compose.yaml"], &[], Some("dev")).map_err(|e| e.to_string())
}

#[test]
fn gpus_are_read_as_compose_go_reads_them() {
    // compose-go loader/tests/gpus_test.go TestGpus: an entry with neither
    // count nor device_ids asks for all (-1, transform/devices.go); one with
    // device_ids keeps count 0. TestGpusAll: `gpus: all` is one request, -1.
    let dir = TempDir::new("muster-gpus");
    let p = load(
        dir.path(),
        "services:\n  test:\n    image: alpine\n    gpus:\n      - driver: nvidia\n\
         \x20     - driver: 3dfx\n        device_ids: [\"voodoo2\"]\n        capabilities: [\"directX\"]\n\
         \x20 all:\n    image: alpine\n    gpus: all\n",
    )
    .expect("loads");
    assert_eq!(
        p.services["test"].runtime.gpus,
        vec![
            DeviceRequest {
                driver: Some("nvidia".into()),
                count: -1,
                ..Default::default()
            },
            DeviceRequest {
                capabilities: vec!["directX".into()],
                driver: Some("3dfx".into()),
                device_ids: vec!["voodoo2".into()],
                ..Default::default()
            },
        ]
    );
    assert_eq!(
        p.services["all"].runtime.gpus,
        vec![DeviceRequest {
            count: -1,
            ..Default::default()
        }]
    );
    // ServiceConfig: gpus after group_add; DeviceRequest's field order.
    let shape = hash::hash_shape(&p.services["test"]).to_go_string();
    assert!(
        shape.contains(concat!(
            r#""gpus":[{"driver":"nvidia","count":-1},"#,
            r#"{"capabilities":["directX"],"driver":"3dfx","device_ids":["voodoo2"]}]"#
        )),
        "{shape}"
    );
}

#[test]
fn device_reservations_and_generic_resources_are_modelled_and_printed() {
    // compose-go types.Resource: cpus, memory, pids, devices,
    // generic_resources; fullExampleJSON's generic_resources shape.
    let dir = TempDir::new("muster-devres");
    let p = load(
        dir.path(),
        "services:\n  app:\n    image: app:1\n    deploy:\n      resources:\n        reservations:\n\
         \x20         devices:\n            - capabilities: [gpu, utility]\n              count: 2\n\
         \x20             options: {virtualization: \"false\"}\n\
         \x20         generic_resources:\n            - discrete_resource_spec: {kind: ssd, value: 1}\n",
    )
    .expect("loads");
    let reservations = p.services["app"]
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.clone())
        .expect("reservations");
    assert_eq!(reservations.devices[0].count, 2);
    assert_eq!(reservations.generic_resources.len(), 1);
    let shape = hash::hash_shape(&p.services["app"]).to_go_string();
    assert!(
        shape.contains(concat!(
            r#""reservations":{"devices":[{"capabilities":["gpu","utility"],"count":2,"#,
            r#""options":{"virtualization":"false"}}],"#,
            r#""generic_resources":[{"discrete_resource_spec":{"kind":"ssd","value":1}}]}"#
        )),
        "{shape}"
    );
}

#[test]
fn bad_device_requests_are_refused_naming_file_line_and_field() {
    let dir = TempDir::new("muster-devbad");
    let cases = [
        // types/device.go DeviceCount: "the only value allowed is 'all' or a number".
        (
            "    gpus:\n      - count: lots\n",
            "compose.yaml:5:16: services.app.gpus[0].count: invalid count \"lots\"",
        ),
        (
            "    gpus: some\n",
            "compose.yaml:4:11: services.app.gpus: invalid gpus \"some\"",
        ),
        // The compose-spec schema's `devices` item requires capabilities.
        (
            "    deploy:\n      resources:\n        reservations:\n          devices:\n            - driver: nvidia\n",
            "compose.yaml:8:15: services.app.deploy.resources.reservations.devices[0].capabilities: a device reservation needs `capabilities`",
        ),
        // validation/validation.go checkDeviceRequest.
        (
            "    gpus:\n      - count: 1\n        device_ids: [\"0\"]\n",
            "compose.yaml:5:16: services.app.gpus[0].count: `count` and `device_ids` exclude each other",
        ),
        (
            "    deploy:\n      resources:\n        reservations:\n          generic_resources:\n            - discrete_resource_spec: {kind: gpu, value: many}\n",
            "services.app.deploy.resources.reservations.generic_resources[0].discrete_resource_spec.value: expected a whole number",
        ),
    ];
    for (yaml, want) in cases {
        let text = format!("services:\n  app:\n    image: app:1\n{yaml}");
        let e = load(dir.path(), &text).expect_err(yaml);
        assert!(e.contains(want), "{yaml}: {e}");
    }
}

#[test]
fn generic_resources_warn_on_one_host_by_name() {
    let dir = TempDir::new("muster-generic-warn");
    write_file(
        dir.path(),
        "compose.yaml",
        "services:\n  app:\n    image: app:1\n    gpus: all\n    deploy:\n      resources:\n        reservations:\n\
         \x20         generic_resources:\n            - discrete_resource_spec: {kind: gpu, value: 1}\n",
    );
    let (_, warnings) = compose::load_with_warnings(&LoadOptions {
        files: vec![dir.path().join("compose.yaml")],
        environment: Some(Default::default()),
        working_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .expect("loads");
    let text: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(
        text.iter().any(|w| w.contains(
            "compose.yaml:9:13: `services.app.deploy.resources.reservations.generic_resources` is applied by `up --swarm` only"
        )),
        "{text:?}"
    );
    assert!(
        !text.iter().any(|w| w.contains("services.app.gpus")),
        "{text:?}"
    );
}

#[test]
fn label_files_are_merged_into_labels_relative_to_the_compose_file() {
    // compose-go types/project.go WithServicesLabelsResolved (loader_test.go
    // TestLoadServiceWithLabelFile): later files over earlier ones, `labels`
    // over all of them; a `${VAR}` in a file reads the labels read so far;
    // paths are relative to the project directory (paths/resolve.go).
    let dir = TempDir::new("muster-labelfile");
    write_file(dir.path(), "labels/a.labels", "team=ml\ntier=a\nowner=x\n");
    write_file(dir.path(), "labels/b.labels", "tier=b\nref=${team}-2\n");
    let p = load(
        dir.path(),
        "services:\n  app:\n    image: app:1\n    label_file: [./labels/a.labels, labels/b.labels]\n    labels: [owner=me]\n",
    )
    .expect("loads");
    let app = &p.services["app"];
    let labels: Vec<(&str, &str)> = app
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("owner", "me"),
            ("ref", "ml-2"),
            ("team", "ml"),
            ("tier", "b")
        ]
    );
    assert_eq!(
        app.label_file,
        [
            dir.path().join("labels/a.labels"),
            dir.path().join("labels/b.labels")
        ]
    );
    // `muster config --json`: label_file after labels, absolute.
    let out = Muster::new()
        .dir(dir.path())
        .run(&["config", "--json", "-f", "compose.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["services"]["app"]["labels"]["ref"], "ml-2");
    assert_eq!(
        v["services"]["app"]["label_file"][1],
        dir.path().join("labels/b.labels").display().to_string()
    );
}

#[test]
fn a_missing_label_file_is_refused_naming_it() {
    // compose-go loader_test.go TestLoadServiceWithLabelFile_NotExists:
    // "label file test not found".
    let dir = TempDir::new("muster-labelfile-missing");
    write_file(dir.path(), "there.labels", "a=1\n");
    let e = load(
        dir.path(),
        "services:\n  app:\n    image: app:1\n    label_file:\n      - ./there.labels\n      - ./gone.labels\n",
    )
    .expect_err("missing file");
    let want = format!(
        "compose.yaml:6:9: services.app.label_file[1]: label file {} not found",
        dir.path().join("gone.labels").display()
    );
    assert!(e.contains(&want), "{e}");
}
