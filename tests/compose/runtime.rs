//! The container runtime keys (cap_add/drop, dns*, extra_hosts, group_add,
//! init, logging, privileged, read_only, security_opt, shm_size, stdin_open,
//! sysctls, tmpfs, tty, ulimits): read into the model, printed by `config
//! --json` in Compose's shape, turned into the engine's create options, and
//! part of the config hash; a Compose key muster does not apply warns by name.

use std::path::Path;

use crate::support::compose::{load_dir, write_file};
use crate::support::TempDir;
use muster::compose::{self, hash, LoadOptions, Project, Ulimit};

const STACK: &str = r#"services:
  app:
    image: app:1
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    dns: 8.8.8.8
    dns_opt: [use-vc]
    dns_search: [example.com]
    extra_hosts:
      - "somehost:162.242.195.82"
      - "otherhost=50.31.209.229"
    group_add: [mail]
    init: true
    logging:
      driver: json-file
      options:
        max-size: 10m
    privileged: true
    read_only: true
    security_opt: ["label:disable"]
    shm_size: 64m
    stdin_open: true
    sysctls:
      net.core.somaxconn: 1024
    tmpfs: ["/run:size=1m"]
    tty: true
    ulimits:
      nproc: 65535
      nofile:
        soft: 20000
        hard: 40000
"#;

fn load(dir: &Path, text: &str) -> Project {
    write_file(dir, "compose.yaml", text);
    load_dir(dir, &["compose.yaml"], &[], Some("rt")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn runtime_keys_are_read_in_compose_s_shape() {
    let dir = TempDir::new("muster-runtime-model");
    let p = load(&dir.0, STACK);
    let rt = &p.services["app"].runtime;
    assert_eq!(rt.cap_add, vec!["NET_ADMIN"]);
    assert_eq!(rt.dns, vec!["8.8.8.8"], "one string is a list of one");
    // compose-go HostsList: `host=ip`, sorted.
    assert_eq!(
        rt.extra_hosts,
        vec!["otherhost=50.31.209.229", "somehost=162.242.195.82"]
    );
    assert_eq!(rt.shm_size, Some(64 << 20));
    assert_eq!(rt.sysctls["net.core.somaxconn"], "1024");
    assert_eq!(rt.ulimits["nproc"], Ulimit::Single(65535));
    assert_eq!(
        rt.ulimits["nofile"],
        Ulimit::Pair {
            soft: 20000,
            hard: 40000
        }
    );
    // `config --json` prints them as service keys, as Compose does.
    let json = serde_json::to_value(&p.services["app"]).expect("json");
    assert_eq!(json["cap_add"], serde_json::json!(["NET_ADMIN"]));
    assert_eq!(json["ulimits"]["nproc"], 65535);
    assert_eq!(json["ulimits"]["nofile"]["soft"], 20000);
    assert_eq!(json["logging"]["options"]["max-size"], "10m");
    assert_eq!(json["privileged"], true);
}

#[test]
fn runtime_keys_become_the_engine_s_create_options() {
    let dir = TempDir::new("muster-runtime-engine");
    let p = load(&dir.0, STACK);
    let spec =
        muster::engine::translate::container_spec(&p, &p.services["app"], 1).expect("translates");
    let host = spec.body.host_config.expect("host config");
    assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".to_string()]));
    assert_eq!(host.cap_drop, Some(vec!["MKNOD".to_string()]));
    assert_eq!(host.dns_options, Some(vec!["use-vc".to_string()]));
    assert_eq!(
        host.extra_hosts,
        Some(vec![
            "otherhost:50.31.209.229".to_string(),
            "somehost:162.242.195.82".to_string()
        ]),
        "the engine takes host:ip"
    );
    assert_eq!(host.init, Some(true));
    assert_eq!(host.privileged, Some(true));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.shm_size, Some(64 << 20));
    assert_eq!(
        host.tmpfs.as_ref().and_then(|t| t.get("/run").cloned()),
        Some("size=1m".to_string())
    );
    let log = host.log_config.expect("log config");
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    let ulimits = host.ulimits.expect("ulimits");
    let nofile = ulimits
        .iter()
        .find(|u| u.name.as_deref() == Some("nofile"))
        .expect("nofile");
    assert_eq!((nofile.soft, nofile.hard), (Some(20000), Some(40000)));
    assert_eq!(spec.body.tty, Some(true));
    assert_eq!(spec.body.open_stdin, Some(true));
}

#[test]
fn runtime_keys_are_in_the_config_hash_json() {
    // ServiceConfig order: cap_add, cap_drop, command, dns, dns_opt,
    // dns_search, entrypoint, extra_hosts (HostsList: sorted host=ip),
    // group_add, image, init (*bool), logging, networks, privileged,
    // read_only, security_opt, shm_size (UnitBytes string), stdin_open,
    // sysctls, tmpfs, tty, ulimits (a single value marshals as a number).
    let dir = TempDir::new("muster-runtime-hash");
    let p = load(&dir.0, STACK);
    let json = concat!(
        r#"{"cap_add":["NET_ADMIN"],"cap_drop":["MKNOD"],"command":null,"#,
        r#""dns":["8.8.8.8"],"dns_opt":["use-vc"],"dns_search":["example.com"],"#,
        r#""entrypoint":null,"#,
        r#""extra_hosts":["otherhost=50.31.209.229","somehost=162.242.195.82"],"#,
        r#""group_add":["mail"],"image":"app:1","init":true,"#,
        r#""logging":{"driver":"json-file","options":{"max-size":"10m"}},"#,
        r#""networks":{"default":null},"privileged":true,"read_only":true,"#,
        r#""security_opt":["label:disable"],"shm_size":"67108864","stdin_open":true,"#,
        r#""sysctls":{"net.core.somaxconn":"1024"},"tmpfs":["/run:size=1m"],"tty":true,"#,
        r#""ulimits":{"nofile":{"soft":20000,"hard":40000},"nproc":65535}}"#
    );
    assert_eq!(hash::hash_shape(&p.services["app"]).to_go_string(), json);
    // sha256 of the text above (printf '%s' "$JSON" | sha256sum).
    assert_eq!(
        hash::config_hash(&p.services["app"]),
        "dec865b3c63ec2194afd01e829d4078f745e5deea27b781b48054fcc22eccce2"
    );
}

#[test]
fn a_compose_key_muster_does_not_apply_warns_by_name() {
    let dir = TempDir::new("muster-runtime-warn");
    write_file(
        &dir.0,
        "compose.yaml",
        "services:\n  app:\n    image: app:1\n    isolation: default\n    attach: false\n    gpus: all\n    blkio_config: {weight: 300}\n    \
         expose: [\"80\"]\n    cpu_shares: 512\n    privileged: true\n",
    );
    let (_, warnings) = compose::load_with_warnings(&LoadOptions {
        files: vec![dir.0.join("compose.yaml")],
        environment: Some(Default::default()),
        working_dir: Some(dir.0.clone()),
        ..Default::default()
    })
    .expect("loads");
    let text: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
    for key in ["isolation", "attach"] {
        assert!(
            text.iter()
                .any(|w| w.contains(&format!("`services.app.{key}` is not applied"))),
            "{key}: {text:?}"
        );
    }
    // Applied keys (runtime, resources) never warn.
    for key in ["privileged", "expose", "cpu_shares", "blkio_config", "gpus"] {
        assert!(
            !text
                .iter()
                .any(|w| w.contains(&format!("services.app.{key}"))),
            "{key}: {text:?}"
        );
    }
}
