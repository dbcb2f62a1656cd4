//! `com.docker.compose.config-hash` as Docker Compose computes it
//! (docker/compose pkg/compose/hash.go ServiceHash over compose-go v2's
//! types.ServiceConfig). Compose cannot run here, so each golden value is
//! derived by hand from the Go source and written out below: the JSON text
//! `json.Marshal` produces for the service (fields in ServiceConfig's
//! declaration order, omitempty, sorted map keys, Go's HTML escaping,
//! UnitBytes as a decimal string, Duration as time.Duration.String()), and
//! the sha256 of exactly those bytes (`printf '%s' "$JSON" | sha256sum`).

use std::path::Path;

use crate::support::compose::{load_dir, write_file};
use crate::support::TempDir;
use muster::compose::{hash, Project};

fn load(dir: &Path, text: &str) -> Project {
    write_file(dir, "compose.yaml", text);
    load_dir(dir, &["compose.yaml"], &[], Some("hash")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_image_only_service() {
    // ServiceConfig: `command` and `entrypoint` have no omitempty (null);
    // loader/normalize.go normalizeNetworks gives a service with neither
    // networks nor network_mode `networks: {default: null}`.
    let dir = TempDir::new("muster-hash-min");
    let p = load(&dir.0, "services:\n  web:\n    image: nginx:1.27\n");
    let json =
        r#"{"command":null,"entrypoint":null,"image":"nginx:1.27","networks":{"default":null}}"#;
    assert_eq!(hash::hash_shape(&p.services["web"]).to_go_string(), json);
    assert_eq!(
        hash::config_hash(&p.services["web"]),
        "35cb49ef2b427e33199ec130fd4fa2219dfb5858c58ba793400d99b97e093e4c"
    );
}

#[test]
fn a_service_with_the_common_keys() {
    // What each part becomes, from the Go source:
    // - depends_on, profiles, deploy.replicas, build, pull_policy, scale: cleared by ServiceHash;
    // - x-muster: Extensions are `json:"-"`;
    // - deploy: Resources and Placement are non-pointer structs, so omitempty keeps
    //   them (`"placement":{}`); cpus is NanoCPUs (float32) 0.5; memory is UnitBytes
    //   512M = 536870912, marshalled as the string "536870912";
    // - environment: MappingWithEquals, keys sorted, `<` escaped as \u003c;
    // - healthcheck: only the fields written, in HealthCheckConfig order (test,
    //   timeout, interval, retries, …), durations as "10s";
    // - networks: `[front]` becomes {"front": null};
    // - ports: "8080:80" with transform/ports.go defaults mode=ingress, protocol=tcp,
    //   in ServicePortConfig order (mode, host_ip, target, published, protocol);
    // - volumes: the short syntax carries an empty `volume`/`bind` object
    //   (format/volume.go populateType; create_host_path true is omitzero), the
    //   long syntax none; `ro` is read_only true;
    // - stop_grace_period: Duration 90s is "1m30s".
    let dir = TempDir::new("muster-hash-full");
    let p = load(
        &dir.0,
        r#"services:
  api:
    image: shop/api:2
    command: ["serve", "--port", "8080"]
    environment:
      B: "2"
      A: "x<y"
    labels:
      team: core
    ports:
      - "8080:80"
    volumes:
      - data:/data
      - /srv/conf:/etc/conf:ro
      - type: bind
        source: /srv/logs
        target: /logs
    networks: [front]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost/"]
      interval: 10s
      retries: 5
    restart: unless-stopped
    stop_grace_period: 1m30s
    depends_on: [db]
    deploy:
      replicas: 3
      resources:
        limits:
          cpus: "0.5"
          memory: 512M
    x-muster:
      probes:
        - tcp: { address: "api:8080" }
  db:
    image: postgres:16
networks:
  front: {}
volumes:
  data: {}
"#,
    );
    let json = concat!(
        r#"{"command":["serve","--port","8080"],"#,
        r#""deploy":{"resources":{"limits":{"cpus":0.5,"memory":"536870912"}},"placement":{}},"#,
        r#""entrypoint":null,"environment":{"A":"x\u003cy","B":"2"},"#,
        r#""healthcheck":{"test":["CMD","curl","-f","http://localhost/"],"interval":"10s","retries":5},"#,
        r#""image":"shop/api:2","labels":{"team":"core"},"networks":{"front":null},"#,
        r#""ports":[{"mode":"ingress","target":80,"published":"8080","protocol":"tcp"}],"#,
        r#""restart":"unless-stopped","stop_grace_period":"1m30s","#,
        r#""volumes":[{"type":"volume","source":"data","target":"/data","volume":{}},"#,
        r#"{"type":"bind","source":"/srv/conf","target":"/etc/conf","read_only":true,"bind":{}},"#,
        r#"{"type":"bind","source":"/srv/logs","target":"/logs"}]}"#
    );
    let api = &p.services["api"];
    assert_eq!(hash::hash_shape(api).to_go_string(), json);
    assert_eq!(
        hash::config_hash(api),
        "2738a78f9dce7e998669f47c94d1046c2e97ac25568b527befbbf3faa9290651"
    );
    // The engine's label is the same function.
    assert_eq!(
        muster::engine::labels::config_hash(api),
        hash::config_hash(api)
    );
}

#[test]
fn what_compose_clears_does_not_change_the_hash() {
    let dir = TempDir::new("muster-hash-clear");
    let base = load(&dir.0, "services:\n  web:\n    image: nginx:1.27\n");
    let other = load(
        &dir.0,
        "services:\n  web:\n    image: nginx:1.27\n    scale: 4\n    pull_policy: always\n    depends_on: [db]\n    x-muster:\n      probes:\n        - tcp: { address: \"web:80\" }\n  db:\n    image: postgres:16\n",
    );
    assert_eq!(
        hash::config_hash(&base.services["web"]),
        hash::config_hash(&other.services["web"])
    );
    let changed = load(
        &dir.0,
        "services:\n  web:\n    image: nginx:1.27\n    user: \"1000\"\n",
    );
    assert_ne!(
        hash::config_hash(&base.services["web"]),
        hash::config_hash(&changed.services["web"])
    );
}

#[test]
fn env_files_stay_in_the_hash_shape_with_their_values_in_environment() {
    // docker compose up loads without WithDiscardEnvFile: types.EnvFile keeps
    // the absolute path; `required: true` is OptOut's zero (omitzero), so only
    // `required: false` shows. The file's values are resolved into `environment`.
    let dir = TempDir::new("muster-hash-envfile");
    write_file(&dir.0, "app.env", "FROM_FILE=1\n");
    let p = load(
        &dir.0,
        "services:\n  web:\n    image: nginx:1.27\n    env_file:\n      - app.env\n      - path: opt.env\n        required: false\n",
    );
    let d = dir.0.display();
    let json = format!(
        concat!(
            r#"{{"command":null,"entrypoint":null,"environment":{{"FROM_FILE":"1"}},"#,
            r#""env_file":[{{"path":"{d}/app.env"}},{{"path":"{d}/opt.env","required":false}}],"#,
            r#""image":"nginx:1.27","networks":{{"default":null}}}}"#
        ),
        d = d
    );
    assert_eq!(hash::hash_shape(&p.services["web"]).to_go_string(), json);
}
