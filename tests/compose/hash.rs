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

#[test]
fn deploy_keys_gpus_and_secret_modes_are_hashed_as_compose_hashes_them() {
    // docker/compose pkg/compose/hash.go ServiceHash clears only
    // deploy.replicas (on a copy of the DeployConfig); `mode`, `labels`,
    // `restart_policy`, `placement` and `endpoint_mode` stay, so changing
    // one of them recreates the container under Compose. The golden JSON, from
    // compose-go v2.10.1 types/types.go:
    // - DeployConfig order: mode, replicas (cleared), labels (`[swarm=yes]` is
    //   the map {"swarm":"yes"}), update_config, rollback_config, resources,
    //   restart_policy, placement, endpoint_mode;
    // - Resource: cpus, memory (UnitBytes 1g = "1073741824"), pids, devices,
    //   generic_resources; DeviceRequest: capabilities, driver, count
    //   (DeviceCount, omitempty), device_ids, options; DiscreteGenericResource
    //   kind and value have no omitempty;
    // - RestartPolicy: condition, delay (*Duration "5s"), max_attempts, window;
    //   Placement: constraints, preferences [{spread}], max_replicas_per_node;
    // - gpus: `all` is one DeviceRequest with Count -1 (transform/gpus.go,
    //   types/device.go), placed after group_add in ServiceConfig;
    // - secrets: transform/defaults.go defaultSecretMount gives a secret
    //   without a target `/run/secrets/<source>`; FileMode.MarshalJSON writes
    //   the mode as the octal string "0440".
    // sha256 of exactly these bytes: `printf '%s' "$JSON" | sha256sum`.
    let dir = TempDir::new("muster-hash-deploy");
    write_file(&dir.0, "token.txt", "t0ken\n");
    let p = load(
        &dir.0,
        r#"services:
  gpu:
    image: acme/embed:1
    gpus: all
    labels: {tier: gpu}
    secrets:
      - source: token
        mode: 0440
    deploy:
      mode: replicated
      replicas: 2
      labels: [swarm=yes]
      resources:
        reservations:
          memory: 1g
          devices:
            - capabilities: [gpu]
              driver: nvidia
              count: 1
          generic_resources:
            - discrete_resource_spec: {kind: gpu, value: 2}
      restart_policy:
        condition: on-failure
        max_attempts: 3
        delay: 5s
      placement:
        constraints: [node.labels.gpu == true]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 1
      endpoint_mode: dnsrr
secrets:
  token:
    file: ./token.txt
"#,
    );
    let json = concat!(
        r#"{"command":null,"deploy":{"mode":"replicated","labels":{"swarm":"yes"},"#,
        r#""resources":{"reservations":{"memory":"1073741824","#,
        r#""devices":[{"capabilities":["gpu"],"driver":"nvidia","count":1}],"#,
        r#""generic_resources":[{"discrete_resource_spec":{"kind":"gpu","value":2}}]}},"#,
        r#""restart_policy":{"condition":"on-failure","delay":"5s","max_attempts":3},"#,
        r#""placement":{"constraints":["node.labels.gpu == true"],"#,
        r#""preferences":[{"spread":"node.labels.zone"}],"max_replicas_per_node":1},"#,
        r#""endpoint_mode":"dnsrr"},"entrypoint":null,"gpus":[{"count":-1}],"#,
        r#""image":"acme/embed:1","labels":{"tier":"gpu"},"networks":{"default":null},"#,
        r#""secrets":[{"source":"token","target":"/run/secrets/token","mode":"0440"}]}"#
    );
    let gpu = &p.services["gpu"];
    assert_eq!(hash::hash_shape(gpu).to_go_string(), json);
    assert_eq!(
        hash::config_hash(gpu),
        "fe7addda26faac6589b18226756153e6507953b2127c73fe0b881b51399ea82e"
    );
    // deploy.replicas is the one deploy key Compose clears; mode is not.
    let text = std::fs::read_to_string(dir.0.join("compose.yaml")).expect("read");
    let scaled = load(&dir.0, &text.replace("replicas: 2", "replicas: 5"));
    assert_eq!(
        hash::config_hash(&scaled.services["gpu"]),
        hash::config_hash(gpu)
    );
    let global = load(
        &dir.0,
        &text
            .replace("mode: replicated", "mode: global")
            .replace("      replicas: 2\n", ""),
    );
    assert_ne!(
        hash::config_hash(&global.services["gpu"]),
        hash::config_hash(gpu)
    );
}

#[test]
fn label_files_stay_in_the_hash_shape_with_their_labels_in_labels() {
    // compose-go loader.go calls WithServicesLabelsResolved(discardEnvFiles):
    // `docker compose up` keeps `label_file` (absolute, after `labels` in
    // ServiceConfig) and resolves the files' labels into `labels`, with the
    // service's own `labels` winning.
    let dir = TempDir::new("muster-hash-labelfile");
    write_file(&dir.0, "extra.labels", "team=ml\ntier=file\n");
    let p = load(
        &dir.0,
        "services:\n  web:\n    image: nginx:1.27\n    label_file: ./extra.labels\n    labels: {tier: web}\n",
    );
    let json = format!(
        concat!(
            r#"{{"command":null,"entrypoint":null,"image":"nginx:1.27","#,
            r#""labels":{{"team":"ml","tier":"web"}},"label_file":["{d}/extra.labels"],"#,
            r#""networks":{{"default":null}}}}"#
        ),
        d = dir.0.display()
    );
    assert_eq!(hash::hash_shape(&p.services["web"]).to_go_string(), json);
}
