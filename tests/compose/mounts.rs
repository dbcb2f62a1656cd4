//! Long-syntax volume options (`bind`, `volume`, `tmpfs`, `consistency`,
//! `read_only`): read into the model, printed in compose-go's
//! `ServiceVolumeConfig` JSON shape (which is also what the config hash
//! serialises), and refused with file:line:col and field when malformed; and
//! `blkio_config`, the other block-device key, likewise.

use std::path::Path;

use crate::support::compose::{load_dir, write_file};
use crate::support::TempDir;
use muster::compose::{hash, Project};

fn load(dir: &Path, text: &str) -> Result<Project, String> {
    write_file(dir, "compose.yaml", text);
    load_dir(dir, &["compose.yaml"], &[], Some("mo")).map_err(|e| e.to_string())
}

#[test]
fn long_volume_options_are_printed_in_compose_go_s_shape() {
    let dir = TempDir::new("muster-mount-shape");
    let p = load(
        dir.path(),
        "services:\n  app:\n    image: app:1\n    volumes:\n\
         \x20     - type: bind\n        source: /srv\n        target: /srv\n        read_only: true\n\
         \x20       consistency: cached\n\
         \x20       bind: {propagation: rslave, create_host_path: false, selinux: z}\n\
         \x20     - type: volume\n        source: data\n        target: /data\n\
         \x20       volume: {nocopy: true, subpath: sub}\n\
         \x20     - type: tmpfs\n        target: /t\n        tmpfs: {size: 1k, mode: 0750}\n\
         \x20     - /opt:/opt\nvolumes:\n  data:\n",
    )
    .expect("loads");
    let shape = hash::hash_shape(&p.services["app"]).to_go_string();
    // ServiceVolumeConfig order: type, source, target, read_only,
    // consistency, bind, volume, tmpfs; UnitBytes as a decimal string;
    // create_host_path only when false (OptOut); a short bind's empty `bind`.
    let want = concat!(
        r#""volumes":[{"type":"bind","source":"/srv","target":"/srv","read_only":true,"#,
        r#""consistency":"cached","bind":{"selinux":"z","propagation":"rslave","create_host_path":false}},"#,
        r#"{"type":"volume","source":"data","target":"/data","volume":{"nocopy":true,"subpath":"sub"}},"#,
        r#"{"type":"tmpfs","target":"/t","tmpfs":{"size":"1024","mode":488}},"#,
        r#"{"type":"bind","source":"/opt","target":"/opt","bind":{}}]"#
    );
    assert!(shape.contains(want), "{shape}");
    let bind = p.services["app"].volumes[0]
        .bind
        .clone()
        .expect("bind options");
    assert!(!bind.create_host_path);
    assert_eq!(p.services["app"].volumes[3].bind, None);
}

#[test]
fn malformed_volume_options_are_refused_naming_the_field() {
    let dir = TempDir::new("muster-mount-bad");
    let cases = [
        (
            "bind: {propagation: sideways}",
            "services.app.volumes[0].bind.propagation: unknown propagation \"sideways\"",
        ),
        (
            "bind: {selinux: q}",
            "services.app.volumes[0].bind.selinux: unknown selinux option \"q\"",
        ),
        (
            "bind: {create_host_path: maybe}",
            "services.app.volumes[0].bind.create_host_path",
        ),
        (
            "tmpfs: {size: lots}",
            "services.app.volumes[0].tmpfs.size: invalid size \"lots\"",
        ),
        (
            "tmpfs: {mode: 0999}",
            "services.app.volumes[0].tmpfs.mode: invalid file mode \"0999\"",
        ),
    ];
    for (option, want) in cases {
        let text = format!(
            "services:\n  app:\n    image: app:1\n    volumes:\n      - type: bind\n        source: /srv\n        target: /srv\n        {option}\n"
        );
        let e = load(dir.path(), &text).expect_err(option);
        assert!(e.contains(want), "{option}: {e}");
        assert!(
            e.contains("compose.yaml:8:"),
            "{option}: names the line: {e}"
        );
    }
}

/// `blkio_config` in compose-go's BlkioConfig shape (after `annotations`,
/// before `cap_add`; rates as UnitBytes strings), and a weight out of range
/// refused at its line.
#[test]
fn blkio_config_is_printed_in_compose_go_s_shape_and_checked() {
    let dir = TempDir::new("muster-blkio-shape");
    let p = load(
        dir.path(),
        "services:\n  app:\n    image: app:1\n    cap_add: [ALL]\n    blkio_config:\n\
         \x20     weight: 300\n      weight_device: [{path: /dev/sda, weight: 400}]\n\
         \x20     device_read_bps: [{path: /dev/sdb, rate: 12mb}]\n\
         \x20     device_write_iops: [{path: /dev/sdb, rate: 30}]\n",
    )
    .expect("loads");
    let shape = hash::hash_shape(&p.services["app"]).to_go_string();
    let want = concat!(
        r#"{"blkio_config":{"weight":300,"weight_device":[{"path":"/dev/sda","weight":400}],"#,
        r#""device_read_bps":[{"path":"/dev/sdb","rate":"12582912"}],"#,
        r#""device_write_iops":[{"path":"/dev/sdb","rate":"30"}]},"cap_add":["ALL"]"#
    );
    assert!(shape.starts_with(want), "{shape}");
    let e = load(
        dir.path(),
        "services:\n  app:\n    image: app:1\n    blkio_config:\n      weight: 5\n",
    )
    .expect_err("weight 5");
    assert!(
        e.contains("compose.yaml:5:") && e.contains("services.app.blkio_config.weight"),
        "{e}"
    );
}

/// compose-go types.go: ServiceVolumeTmpfs.Mode is a `uint32` with
/// `json:"mode,omitempty"`, so `config --json` and YAML print the number
/// (0750 written in the file is 488); a secret's or config's mode is a
/// FileMode, whose MarshalJSON / MarshalYAML print the octal string "0440".
#[test]
fn tmpfs_mode_is_a_number_and_a_secret_mode_an_octal_string() {
    let dir = TempDir::new("muster-mode-print");
    write_file(dir.path(), "s.txt", "x\n");
    write_file(
        dir.path(),
        "compose.yaml",
        "services:\n  app:\n    image: app:1\n    volumes:\n\
         \x20     - {type: tmpfs, target: /t, tmpfs: {mode: 0750}}\n\
         \x20   secrets: [{source: s, mode: 0440}, {source: s, target: t, mode: \"440\"}]\n\
         secrets:\n  s: {file: ./s.txt}\n",
    );
    let out = crate::support::Muster::new().dir(dir.path()).run(&[
        "config",
        "--json",
        "-f",
        "compose.yaml",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let app = &v["services"]["app"];
    assert_eq!(app["volumes"][0]["tmpfs"]["mode"], serde_json::json!(488));
    assert_eq!(app["secrets"][0]["mode"], serde_json::json!("0440"));
    // A quoted mode is octal even without the leading 0 (FileMode's
    // DecodeMapstructure parses a string in base 8).
    assert_eq!(app["secrets"][1]["mode"], serde_json::json!("0440"));
    let out = crate::support::Muster::new()
        .dir(dir.path())
        .run(&["config", "-f", "compose.yaml"]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains("        mode: 488\n"), "{yaml}");
    assert!(yaml.contains("      mode: \"0440\"\n"), "{yaml}");
}
