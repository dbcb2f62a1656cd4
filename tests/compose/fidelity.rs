//! The differences from Docker Compose listed in issue 17, each pinned by a
//! project written to a scratch directory the way compose-go's own tests do
//! (`createFile` in loader/include_test.go), and loaded with a controlled
//! environment. Each test names the compose-go test or source it follows.

use std::path::Path;

use crate::support::compose::{load_dir, write_file};
use crate::support::TempDir;
use muster::compose::Project;

fn load_in(dir: &Path, files: &[&str], vars: &[(&str, &str)], name: Option<&str>) -> Project {
    load_dir(dir, files, vars, name).unwrap_or_else(|e| panic!("loading {files:?}: {e}"))
}

#[test]
fn compose_project_name_is_visible_to_interpolation() {
    // compose-go loader_test.go TestProjectNameInterpolation and loader.go
    // projectName: the name is settled first, then set as COMPOSE_PROJECT_NAME.
    let dir = TempDir::new("muster-fidelity-name");
    write_file(
        &dir.0,
        "compose.yaml",
        "name: from-file\nservices:\n  web:\n    image: img:${COMPOSE_PROJECT_NAME}\n    environment:\n      - COMPOSE_PROJECT_NAME\n",
    );
    let p = load_in(&dir.0, &["compose.yaml"], &[], None);
    assert_eq!(p.name, "from-file");
    assert_eq!(p.services["web"].image.as_deref(), Some("img:from-file"));
    assert_eq!(
        p.services["web"].environment["COMPOSE_PROJECT_NAME"].as_deref(),
        Some("from-file")
    );
    let p = load_in(&dir.0, &["compose.yaml"], &[], Some("from-flag"));
    assert_eq!(p.services["web"].image.as_deref(), Some("img:from-flag"));
    // An interpolated `name:` is interpolated before it names the project.
    write_file(
        &dir.0,
        "named.yaml",
        "name: ${STACK:-fallback}\nservices:\n  web:\n    image: img:${COMPOSE_PROJECT_NAME}\n",
    );
    let p = load_in(&dir.0, &["named.yaml"], &[("STACK", "shop")], None);
    assert_eq!(
        (p.name.as_str(), p.services["web"].image.as_deref()),
        ("shop", Some("img:shop"))
    );
}

#[test]
fn dotenv_values_read_shell_variables() {
    // compose-go cli/options_test.go TestEnvVariablePrecedence: `.env` has
    // BAR=${FOO}, FOO is exported in the shell: BAR is the shell's FOO.
    let dir = TempDir::new("muster-fidelity-dotenv");
    write_file(&dir.0, ".env", "FOO=from-dotenv\nBAR=${FOO}\n");
    write_file(
        &dir.0,
        "compose.yaml",
        "services:\n  web:\n    image: img:${BAR}\n",
    );
    let p = load_in(&dir.0, &["compose.yaml"], &[("FOO", "shell")], None);
    assert_eq!(p.services["web"].image.as_deref(), Some("img:shell"));
}

#[test]
fn legacy_external_name_keeps_the_name_and_external_defaults_to_the_key() {
    // compose-go transform/external.go (external: {name: x} adopts x) and
    // loader/normalize.go setNameFromKey (an external resource is named by its key).
    let dir = TempDir::new("muster-fidelity-external");
    write_file(
        &dir.0,
        "compose.yaml",
        "services:\n  web:\n    image: img\n    networks: [front, back]\n    volumes: [data:/data, cache:/cache]\n\
networks:\n  front:\n    external:\n      name: my-cool-net\n  back:\n    external: true\n\
volumes:\n  data:\n    external:\n      name: my-cool-volume\n  cache:\n    external: true\n",
    );
    let p = load_in(&dir.0, &["compose.yaml"], &[], Some("proj"));
    assert_eq!(p.networks["front"].name.as_deref(), Some("my-cool-net"));
    assert!(p.networks["front"].external);
    assert_eq!(p.volumes["data"].name.as_deref(), Some("my-cool-volume"));
    assert!(p.volumes["data"].external);
    use muster::engine::{networks::network_name, volumes::volume_name};
    assert_eq!(network_name(&p, "front"), "my-cool-net");
    assert_eq!(network_name(&p, "back"), "back");
    assert_eq!(volume_name(&p, "data"), "my-cool-volume");
    assert_eq!(volume_name(&p, "cache"), "cache");
    // A different `name:` beside external.name is refused, as compose-go.
    write_file(
        &dir.0,
        "conflict.yaml",
        "services:\n  web:\n    image: img\nvolumes:\n  data:\n    name: a\n    external:\n      name: b\n",
    );
    let e = load_dir(&dir.0, &["conflict.yaml"], &[], None)
        .expect_err("name and external.name conflict")
        .to_string();
    assert!(
        e.contains("conflict.yaml:8:7: volumes.data.external") && e.contains("conflict"),
        "{e}"
    );
}

#[test]
fn network_ipam_and_driver_opts_are_kept() {
    // compose-go types.NetworkConfig / IPAMConfig / VolumeConfig (driver_opts, ipam).
    let dir = TempDir::new("muster-fidelity-ipam");
    write_file(
        &dir.0,
        "compose.yaml",
        r#"services:
  web:
    image: img
    networks: [front]
    volumes: [data:/data]
networks:
  front:
    driver: bridge
    driver_opts:
      com.docker.network.bridge.enable_icc: "true"
      com.docker.network.driver.mtu: 1400
    ipam:
      driver: default
      config:
        - subnet: 172.28.0.0/16
          ip_range: 172.28.5.0/24
          gateway: 172.28.5.254
          aux_addresses:
            host1: 172.28.1.5
      options:
        foo: bar
volumes:
  data:
    driver: local
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: size=100m
"#,
    );
    let p = load_in(&dir.0, &["compose.yaml"], &[], Some("proj"));
    let net = &p.networks["front"];
    assert_eq!(net.driver_opts["com.docker.network.driver.mtu"], "1400");
    let ipam = net.ipam.as_ref().expect("ipam kept");
    assert_eq!(ipam.driver.as_deref(), Some("default"));
    assert_eq!(ipam.config[0].subnet.as_deref(), Some("172.28.0.0/16"));
    assert_eq!(ipam.config[0].ip_range.as_deref(), Some("172.28.5.0/24"));
    assert_eq!(ipam.config[0].gateway.as_deref(), Some("172.28.5.254"));
    assert_eq!(ipam.config[0].aux_addresses["host1"], "172.28.1.5");
    assert_eq!(ipam.options["foo"], "bar");
    assert_eq!(p.volumes["data"].driver_opts["o"], "size=100m");
    assert_eq!(p.volumes["data"].driver_opts["type"], "tmpfs");
}

#[test]
fn extends_file_in_a_second_file_resolves_against_the_project_directory() {
    // compose-go loader.go: the project's files load with one
    // localResourceLoader{WorkingDir: project directory}, so `extends.file` in
    // a second `-f` file in another directory is relative to the project
    // directory; paths inside the extended file stay relative to that file
    // (extends.go getExtendsBaseFromFile).
    let dir = TempDir::new("muster-fidelity-extends");
    write_file(
        &dir.0,
        "compose.yaml",
        "services:\n  app:\n    image: app\n",
    );
    write_file(
        &dir.0,
        "sub/override.yaml",
        "services:\n  web:\n    extends:\n      file: lib/base.yaml\n      service: base\n",
    );
    write_file(
        &dir.0,
        "lib/base.yaml",
        "services:\n  base:\n    image: base-from-project-dir\n    volumes: [./data:/data]\n",
    );
    write_file(
        &dir.0,
        "sub/lib/base.yaml",
        "services:\n  base:\n    image: wrong-dir\n",
    );
    let p = load_in(
        &dir.0,
        &["compose.yaml", "sub/override.yaml"],
        &[],
        Some("proj"),
    );
    let web = &p.services["web"];
    assert_eq!(web.image.as_deref(), Some("base-from-project-dir"));
    assert_eq!(
        web.volumes[0].source.as_deref(),
        Some(dir.0.join("lib/data").to_str().unwrap())
    );
}

#[test]
fn nested_include_and_extends() {
    // compose-go include_test.go TestNestedIncludeAndExtends: an include with
    // `project_directory: .` makes the included file's `extends.file` relative
    // to that directory, not to the included file's own directory.
    let dir = TempDir::new("muster-fidelity-include-extends");
    write_file(
        &dir.0,
        "compose.yml",
        "include:\n  - project_directory: .\n    path: dir/included.yaml\n",
    );
    write_file(
        &dir.0,
        "dir/included.yaml",
        "services:\n  included:\n    extends:\n      file: dir/extended.yaml\n      service: extended\n",
    );
    write_file(
        &dir.0,
        "dir/extended.yaml",
        "services:\n  extended:\n    image: alpine\n",
    );
    let p = load_in(&dir.0, &["compose.yml"], &[], Some("project"));
    assert_eq!(p.services["included"].image.as_deref(), Some("alpine"));
}

#[test]
fn include_with_project_directory_rebases_relative_paths() {
    // compose-go include_test.go TestIncludeWithProjectDirectory
    // (testdata/include/project-directory.yaml): `project_directory:
    // ../subdir` is relative to the including project, and the included
    // file's build context, bind sources and env_file resolve against it.
    let dir = TempDir::new("muster-fidelity-include-dir");
    write_file(
        &dir.0,
        "include/project-directory.yaml",
        "include:\n  - project_directory: ../subdir\n    path: ./dir/compose.yaml\n",
    );
    write_file(
        &dir.0,
        "include/dir/compose.yaml",
        "services:\n  service:\n    build: .\n    env_file: ./extra.env\n    volumes:\n      - ./compose-test-extends-imported.yaml:/mnt/test.yaml\n",
    );
    write_file(&dir.0, "subdir/extra.env", "X=1\n");
    let p = load_in(
        &dir.0,
        &["include/project-directory.yaml"],
        &[],
        Some("test-load-project-directory"),
    );
    let s = &p.services["service"];
    let sub = dir.0.join("subdir");
    assert_eq!(
        s.build.as_ref().map(|b| b.context.as_str()),
        Some(sub.to_str().unwrap())
    );
    assert_eq!(
        s.volumes[0].source.as_deref(),
        Some(
            sub.join("compose-test-extends-imported.yaml")
                .to_str()
                .unwrap()
        )
    );
    assert_eq!(s.env_file[0].path, sub.join("extra.env"));
}

#[test]
fn include_env_file_feeds_bare_environment_entries() {
    // compose-go include_test.go TestLoadWithIncludeEnv: `- VAR_NAME` in the
    // included file takes the include's env_file value; the including file's
    // own `- VAR_NAME` does not see it.
    let dir = TempDir::new("muster-fidelity-include-env");
    write_file(
        &dir.0,
        "compose.yml",
        "include:\n  - path:\n    - ./module/compose.yml\n    env_file:\n      - ./custom.env\nservices:\n  a:\n    image: alpine\n    environment:\n      - VAR_NAME\n",
    );
    write_file(&dir.0, "custom.env", "VAR_NAME=value\n");
    write_file(
        &dir.0,
        "module/compose.yml",
        "services:\n  b:\n    image: alpine\n    environment:\n      - VAR_NAME\n  c:\n    image: alpine\n    environment:\n      - VAR_NAME\n",
    );
    let p = load_in(&dir.0, &["compose.yml"], &[], Some("project"));
    assert_eq!(p.services["a"].environment["VAR_NAME"], None);
    assert_eq!(
        p.services["b"].environment["VAR_NAME"].as_deref(),
        Some("value")
    );
    assert_eq!(
        p.services["c"].environment["VAR_NAME"].as_deref(),
        Some("value")
    );
}
